"""Issue 20, sessions that outlive their authority: a frozen controlling viewer's held keys,
idle and maximum session time, and a client certificate revoked during its session.

Each waits for an event (keys released, a close) with a generous limit and asserts what
happened and in which order, never how long it took.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from rdesk.client.connection import Connection, connect
from rdesk.client.running import ConnectionLost
from rdesk.client.tls import client_ssl_context
from rdesk.host.security.ca import init_ca, issue, revoke
from rdesk.host.security.clientcerts import ClientCertPolicy
from rdesk.protocol import CloseCode
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb, pointer_buttons, pressed_keys

HostFactory = Callable[..., RunningHost]

# A controlling viewer in its own process: it presses Ctrl, Shift, a and two buttons, says
# "held" once the host has them, and then does nothing until it is frozen with SIGSTOP.
_HOLDER = textwrap.dedent("""
    import asyncio, sys
    from rdesk.client.connection import connect

    async def main():
        conn = await connect(sys.argv[1], sys.argv[2], known_hosts=None, pinned=sys.argv[3])
        await conn.wait_for(lambda: conn.holder == conn.viewer_id, 10)
        for keysym in (0xFFE3, 0xFFE1, ord("a")):
            await conn.key(keysym, True)
        await conn.pointer(20, 20, 0b101)
        assert (await conn.sync(10)).ok
        print("held", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


async def _until(predicate: Callable[[], bool], limit: float = 40.0) -> bool:
    for _ in range(int(limit / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_a_frozen_controlling_viewer_lets_go_long_before_it_is_dropped(
    xvfb: Xvfb, host_factory: HostFactory, injectors: Callable[[str], object]
) -> None:
    host = host_factory(xvfb.display, injector=injectors)
    events = host.record_events()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, host.url, PASSWORD, host.fingerprint],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert (await asyncio.to_thread(holder.stdout.readline)).strip() == "held"
        assert len(pressed_keys(xvfb.display)) == 3 and pointer_buttons(xvfb.display) != 0
        os.kill(holder.pid, signal.SIGSTOP)  # frozen: no pong, no ack, nothing
        assert await _until(lambda: not pressed_keys(xvfb.display)
                            and pointer_buttons(xvfb.display) == 0)
        # Released while the frozen viewer was still connected: not by its close.
        still_there = len(host.server.viewers) == 1
        kinds = [kind for kind, _ in events]
        assert still_there and "disconnect" not in kinds, kinds
        released = [fields for kind, fields in events if kind == "input_released"]
        assert released and released[0]["keys"] == 3 and released[0]["buttons"] == 2
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)


async def _closed_reason(conn: Connection, limit: float = 40.0) -> ConnectionLost:
    lost = await asyncio.wait_for(conn.closed, limit)
    assert isinstance(lost, ConnectionLost)
    return lost


async def test_idle_and_maximum_session_close_with_a_reason_the_viewer_gets(
    xvfb: Xvfb, host_factory: HostFactory
) -> None:
    idle_host = host_factory(xvfb.display, idle_timeout=2.0)
    conn = await connect(idle_host.url, PASSWORD, known_hosts=None,
                         pinned=idle_host.fingerprint)
    lost = await _closed_reason(conn)
    assert lost.code == CloseCode.POLICY and "idle for 2 s" in str(lost)
    await conn.close()
    long_host = host_factory(xvfb.display, max_session=3.0)
    conn = await connect(long_host.url, PASSWORD, known_hosts=None,
                         pinned=long_host.fingerprint)
    for i in range(200):  # an active viewer: input does not extend a session's maximum
        if conn.closed.done():
            break
        try:
            await conn.pointer(i % 100, 10)
        except Exception:  # the close raced this send: what it said is checked below
            break
        await asyncio.sleep(0.05)
    lost = await _closed_reason(conn)
    assert lost.code == CloseCode.POLICY and "session time limit" in str(lost)
    await conn.close()


async def test_a_certificate_revoked_during_its_session_ends_it(
    xvfb: Xvfb, host_factory: HostFactory, tmp_path: Path
) -> None:
    ca = tmp_path / "ca"
    init_ca(ca)
    host = host_factory(xvfb.display, cert_policy=ClientCertPolicy(ca), require_client_cert=True)
    events = host.record_events()
    bob = issue(ca, "bob", "control", tmp_path / "out")
    ctx = client_ssl_context(cert=bob[0], key=bob[1])
    conn = await connect(host.url, "", known_hosts=None, pinned=host.fingerprint,
                         ssl_context=ctx)
    try:
        await conn.wait_exact(20)
        revoke(ca, "bob")  # `rdesk certs revoke bob` while bob is connected
        lost = await _closed_reason(conn)
    finally:
        await conn.close()
    assert lost.code == CloseCode.POLICY and "certificate" in str(lost)
    assert ("revoked", {"viewer": conn.viewer_id, "name": "rdesk viewer",
                        "reason": "certificate no longer valid"}) in events
