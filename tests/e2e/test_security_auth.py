"""Issue 20, guessing: penalties per source and credential kind over real logins, and a global
brake that slows distributed guessing without refusing the owner or dropping viewers.

Counts and penalties are read from the host's throttle; nothing asserts a wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from rdesk.client.connection import connect
from rdesk.client.tls import client_ssl_context
from rdesk.host.credentials import HostCredentials
from rdesk.host.security.audit import AuditLog
from rdesk.host.security.passwords import PasswordStore
from rdesk.host.security.throttle import AuthThrottle, GlobalThrottle
from rdesk.protocol import CloseCode
from rdesk.protocol.messages import PROTOCOL_VERSION
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb

HostFactory = Callable[..., RunningHost]
VIEW_PASSWORD = "only looking, thanks"


async def _login(host: RunningHost, secret: str, local: str = "127.0.0.1") -> int:
    """One raw login from ``local``: 0 when admitted (then closed), else the close code."""
    ws = await ws_connect(host.url + "/rdesk", ssl=client_ssl_context(), compression=None,
                          local_addr=(local, 0), max_size=2**24)
    try:
        hello = json.loads(await ws.recv())
        await ws.send(json.dumps({
            "t": "auth", "version": PROTOCOL_VERSION, "nonce": hello["nonce"],
            "method": "password", "secret": secret, "name": "prober"}))
        while True:
            message = await asyncio.wait_for(ws.recv(), 60)
            if isinstance(message, str) and json.loads(message).get("t") == "welcome":
                return 0
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return int(closed.rcvd.code)
    finally:
        await ws.close()


def _install(host: RunningHost, throttle: AuthThrottle) -> AuthThrottle:
    async def install() -> AuthThrottle:
        host.server.throttle = throttle
        return throttle

    return host.call(install())


@pytest.fixture
def two_passwords(xvfb: Xvfb, host_factory: HostFactory) -> RunningHost:
    credentials = HostCredentials(PasswordStore.from_password(PASSWORD),
                                  PasswordStore.from_password(VIEW_PASSWORD))
    return host_factory(xvfb.display, credentials=credentials)


async def test_a_view_login_does_not_reset_the_control_guessing_penalty(
    two_passwords: RunningHost,
) -> None:
    host = two_passwords
    throttle = _install(host, AuthThrottle(base=0.001, ceiling=30.0,
                                           global_throttle=GlobalThrottle(limit=10**6)))
    for _ in range(9):
        assert await _login(host, "control guess") == CloseCode.AUTH_FAILED
    assert await _login(host, VIEW_PASSWORD) == 0  # a view-only user logs in...
    # ...and its next guess at the control password still waits the ninth failure's delay.
    assert throttle.failures("127.0.0.1") == 9
    assert throttle.delay("127.0.0.1", time.monotonic()) == pytest.approx(0.001 * 2**8)
    assert await _login(host, PASSWORD) == 0
    assert throttle.failures("127.0.0.1") == 0  # the control password leaves nothing to guess


async def test_parallel_guesses_from_one_source_wait_growing_delays(
    two_passwords: RunningHost,
) -> None:
    host = two_passwords
    throttle = _install(host, AuthThrottle(base=0.001, ceiling=30.0,
                                           global_throttle=GlobalThrottle(limit=10**6)))
    waits: list[float] = []
    original = throttle.begin

    def begin(source: str, now: float, kind: str = "password") -> float:
        waits.append(original(source, now, kind))
        return waits[-1]

    throttle.begin = begin  # type: ignore[method-assign]
    codes = await asyncio.gather(*(_login(host, f"guess {i}") for i in range(8)))
    assert codes == [CloseCode.AUTH_FAILED] * 8
    assert sorted(waits) == [0.0] + [0.001 * 2**i for i in range(7)]  # none shares a delay
    assert throttle.failures("127.0.0.1") == 8


async def test_the_brake_slows_guessers_but_not_the_owner_or_viewers(
    xvfb: Xvfb, host_factory: HostFactory
) -> None:
    host = host_factory(xvfb.display)
    # The attack: two addresses guessing eight at a time trip the global limit.
    throttle = _install(host, AuthThrottle(
        base=0.001, ceiling=0.01,
        global_throttle=GlobalThrottle(limit=10, window=600, lockout=600, trickle=0.0)))
    assert await _login(host, PASSWORD, "127.0.0.1") == 0  # the owner's usual address
    watcher = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
    try:
        await watcher.wait_exact(30)
        for _ in range(3):
            await asyncio.gather(*(_login(host, "guess", local)
                                   for local in ("127.0.0.2", "127.0.0.3") for _ in range(8)))
        assert throttle.locked(time.monotonic())
        # The guessers are refused outright now, before any hash...
        assert await _login(host, "guess", "127.0.0.2") == CloseCode.POLICY
        assert await _login(host, PASSWORD, "127.0.0.3") == CloseCode.POLICY
        # ...the owner's known address and fresh addresses still log in, every time...
        for i in range(15):
            assert await _login(host, PASSWORD, "127.0.0.1") == 0
            assert await _login(host, PASSWORD, f"127.0.1.{i + 1}") == 0
        # ...and the viewer that was already in never noticed.
        await watcher.refresh()
        await watcher.wait_exact(30)
        assert not watcher.closed.done()
    finally:
        await watcher.close()


async def test_consent_and_disconnect_lines_carry_their_fields(
    xvfb: Xvfb, host_factory: HostFactory, tmp_path: Path
) -> None:
    host = host_factory(xvfb.display, consent="ask")
    seen: list[tuple[str, dict[str, object]]] = []

    async def answer(viewer_id: int, name: str, role: str, source: str) -> bool:
        return True

    async def install() -> None:
        host.server.consent = answer
        host.server._on_event = lambda kind, fields: seen.append((kind, dict(fields)))

    host.call(install())
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
    await conn.close()
    for _ in range(200):
        if any(kind == "disconnect" for kind, _ in seen):
            break
        await asyncio.sleep(0.05)
    audit = AuditLog(tmp_path / "audit.jsonl").filter  # the host's whitelist
    consent = [audit(kind, f) for kind, f in seen if kind == "consent"]
    assert consent and consent[0]["decision"] == "admitted"  # before: dropped by the filter
    gone = [audit(kind, f) for kind, f in seen if kind == "disconnect"]
    assert gone and gone[0]["source"] == "127.0.0.1" and isinstance(gone[0]["duration"], float)
