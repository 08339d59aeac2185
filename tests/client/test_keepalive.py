"""The session's timers keep the viewer's connection, end to end over TLS on 127.0.0.1.

- a healthy, idle connection to a real host (on a real Xvfb) stays open across many short
  ping intervals, and the pongs give the round trip;
- a real host that stops answering (its event loop frozen) is dropped by the viewer's
  session timer with the ``UNRESPONSIVE`` reason, as one line;
- a raw TLS websocket "host" written here that admits the viewer and then never answers a
  ping receives the viewer's Close with ``UNRESPONSIVE``;
- one that keeps the viewer waiting with Notices forever is stopped by the handshake
  deadline (``HANDSHAKE_TIMEOUT``).

Intervals are short and passed to :func:`connect`; nothing here asserts how long anything
took.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from rdesk.client.connection import ConnectError, Connection, connect
from rdesk.host.security.tls import (
    certificate_fingerprint,
    ensure_host_certificate,
    server_ssl_context,
)
from rdesk.protocol.errors import CloseCode
from rdesk.protocol.messages import PROTOCOL_NAME, PROTOCOL_VERSION, Auth, Hello, Notice, Welcome
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role
from tests.e2e.conftest import PASSWORD, HostThread, RunningHost
from tests.xserver import Xvfb

NONCE = "B" * 24


@pytest.fixture
def host(xvfb: Xvfb, tmp_path: Path) -> Iterator[RunningHost]:
    """A real host sharing a fresh Xvfb, password :data:`PASSWORD`."""
    thread = HostThread(xvfb.display, tmp_path / "host")
    thread.tmp.mkdir(parents=True)
    try:
        yield thread.start()
    finally:
        thread.stop()


async def test_a_healthy_idle_connection_stays_open_across_ping_intervals(
    host: RunningHost,
) -> None:
    conn = await connect(
        host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint,
        ping_interval=0.1, ping_timeout=2.0,
    )
    try:
        await conn.wait_exact(30)
        # Many keepalive intervals pass on an idle screen; every ping is answered.
        await conn.wait_for(lambda: conn.stats.pongs >= 8, 30)
        assert not conn.closed.done()
        assert conn.stats.rtt is not None and conn.stats.min_rtt is not None
        assert 0 <= conn.stats.min_rtt <= conn.stats.rtt
        assert conn.ws.ping_interval is None  # websockets' own keepalive is off: one keepalive
        # An on-demand ping shares the one slot and is answered too.
        for _ in range(100):
            pongs = conn.stats.pongs
            sent = await conn.ping()
            await _pong_after(conn, pongs)  # ours, or the keepalive's that held the slot
            if sent:
                break
        assert sent
        await conn.sync()  # input still flows
        assert conn.viewer_id in host.call(_viewer_ids(host))
    finally:
        await conn.close()


async def _pong_after(conn: Connection, pongs: int) -> None:
    await conn.wait_for(lambda: conn.stats.pongs > pongs, 10)


async def _viewer_ids(host: RunningHost) -> list[int]:
    return list(host.server.viewers)  # on the host's loop (host.call)


async def test_a_host_that_stops_answering_is_closed_unresponsive(host: RunningHost) -> None:
    conn = await connect(
        host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint,
        ping_interval=0.2, ping_timeout=0.8,
    )
    thawed = threading.Event()
    try:
        await conn.wait_exact(30)
        # The host's event loop stops dead (as if the process were stopped): no pong comes.
        host.loop.call_soon_threadsafe(thawed.wait, 60)
        lost = await asyncio.wait_for(asyncio.shield(conn.closed), 30)
    finally:
        thawed.set()
        await conn.close()
    assert lost.code == CloseCode.UNRESPONSIVE
    assert str(lost) == f"127.0.0.1:{host.port}: peer did not answer a ping"
    with pytest.raises(ConnectError):
        await conn.refresh()  # closed stays closed


# --- a raw TLS websocket host -------------------------------------------------------------------


class RawHost:
    """A TLS websocket server speaking just enough rdesk: ``handler(ws, session)`` after
    the Hello; it records everything the viewer sends and how the viewer closed."""

    def __init__(
        self, tmp: Path, after_hello: Callable[[ServerConnection, Session], Awaitable[None]]
    ) -> None:
        cert, key = ensure_host_certificate(tmp / "raw-host")
        self.fingerprint = certificate_fingerprint(cert)
        self.ssl = server_ssl_context(cert, key)
        self.after_hello = after_hello
        self.received: list[dict[str, object]] = []
        self.close_code: int | None = None
        self.ended = asyncio.Event()

    async def handle(self, ws: ServerConnection) -> None:
        session = Session(Role.HOST, 0.0, ping_interval=None)
        hello = Hello(PROTOCOL_NAME, PROTOCOL_VERSION, NONCE, "password", "raw")
        try:
            await ws.send(session.send(hello, 0.0))
            await self.after_hello(ws, session)
            async for data in ws:  # read (so the viewer is never blocked), never answer
                self.received.append(json.loads(data))
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self.ended.set()


async def _admit(ws: ServerConnection, session: Session) -> None:
    auth = session.receive(await ws.recv(), 0.0)
    assert isinstance(auth, Auth) and auth.secret == PASSWORD
    await ws.send(session.send(Welcome("control", 1, 64, 48, "raw"), 0.0))


async def _keep_waiting(ws: ServerConnection, session: Session) -> None:
    session.receive(await ws.recv(), 0.0)  # the Auth
    while True:
        await ws.send(session.send(Notice("waiting for the host's user"), 0.0))
        await asyncio.sleep(0.1)


async def test_a_host_that_admits_then_never_pongs_gets_an_unresponsive_close(
    tmp_path: Path,
) -> None:
    raw = RawHost(tmp_path, _admit)
    async with serve(raw.handle, "127.0.0.1", 0, ssl=raw.ssl, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await connect(
            f"wss://127.0.0.1:{port}", PASSWORD, known_hosts=None, pinned=raw.fingerprint,
            ping_interval=0.1, ping_timeout=0.5, video=False,  # only the keepalive speaks
        )
        try:
            lost = await asyncio.wait_for(asyncio.shield(conn.closed), 30)
        finally:
            await conn.close()
        await asyncio.wait_for(raw.ended.wait(), 30)
    assert lost.code == CloseCode.UNRESPONSIVE
    assert str(lost) == f"127.0.0.1:{port}: peer did not answer a ping"
    kinds = [m["t"] for m in raw.received]
    # One ping outstanding at a time: the keepalive sent one, then gave up on it.
    assert kinds == ["ping", "close"], kinds
    assert raw.received[-1]["code"] == CloseCode.UNRESPONSIVE
    assert raw.close_code == CloseCode.UNRESPONSIVE


async def _refused(raw: RawHost, **options: float) -> tuple[int, str]:
    """Connect to ``raw`` with ``options``; the port and the one-line ConnectError."""
    async with serve(raw.handle, "127.0.0.1", 0, ssl=raw.ssl, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ConnectError) as caught:
            await connect(f"wss://127.0.0.1:{port}", PASSWORD, known_hosts=None,
                          pinned=raw.fingerprint, **options)  # type: ignore[arg-type]
        await asyncio.wait_for(raw.ended.wait(), 30)
    return port, str(caught.value)


async def test_a_host_that_never_admits_is_stopped_by_the_handshake_deadline(
    tmp_path: Path,
) -> None:
    raw = RawHost(tmp_path, _keep_waiting)
    # Each Notice arrives well within the per-message wait; only the whole is bounded.
    port, error = await _refused(raw, timeout=10, handshake_timeout=1.0)
    assert error == f"127.0.0.1:{port}: handshake not completed in time"
    assert raw.close_code == CloseCode.HANDSHAKE_TIMEOUT


async def _delay_then_silence(ws: ServerConnection, session: Session) -> None:
    session.receive(await ws.recv(), 0.0)  # the Auth
    # Text a person reads, with no number in it: the viewer must act on the field.
    await ws.send(session.send(Notice("please hold on", delay=1), 0.0))


async def test_a_login_delay_is_read_from_the_notices_number_not_its_text(
    tmp_path: Path,
) -> None:
    raw = RawHost(tmp_path, _delay_then_silence)
    # Waited out for timeout + delay (not the two minutes of a consent notice), then the user
    # is told when to try again.
    port, error = await _refused(raw, timeout=0.5, handshake_timeout=60.0)
    assert error == (
        f"127.0.0.1:{port}: the host delays logins from this address after failed attempts; "
        "try again in 1 s")
