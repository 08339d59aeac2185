"""A viewer's life on the host without a network: HostServer.serve_transport and
ViewerConnection's teardown (rdesk/host/serve/server.py, connection.py).

The transport is an in-memory pair of queues (the seam a relay's tunnel also plugs into); the
screen source, session, admission, sender and recorder are the real ones. End-to-end tests
over real TLS websockets are in tests/e2e/.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import numpy as np
import pytest

from rdesk.common.transport import TransportClosed
from rdesk.host.screen.source import ScreenSource
from rdesk.host.serve.server import HostServer
from rdesk.host.settings import HostSettings
from rdesk.protocol.access import Access
from rdesk.protocol.codec import decode
from rdesk.protocol.errors import CloseCode
from rdesk.protocol.inputs import Key
from rdesk.protocol.messages import PROTOCOL_VERSION, Ack, Auth, Close, Hello, Welcome
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role
from rdesk.protocol.updates import Update


class Capturer:
    """A 128x64 screen that never changes."""

    width, height = 128, 64

    def grab(self) -> np.ndarray:
        return np.full((64, 128, 4), 90, dtype=np.uint8)

    def close(self) -> None:
        pass


class MemoryTransport:
    """Both ends of a message pipe: the host uses the Transport methods, the test the rest."""

    def __init__(self) -> None:
        self.remote = "memory"
        self.peer_certificate: bytes | None = None
        self.to_host: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.to_viewer: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed: tuple[int, str] | None = None

    async def send(self, frame: str | bytes) -> None:
        if self.closed is not None:
            raise TransportClosed
        await self.to_viewer.put(frame)

    async def recv(self) -> str | bytes:
        frame = await self.to_host.get()
        if frame is None:
            raise TransportClosed
        return frame

    async def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)
            self.to_host.put_nowait(None)


class Passwords:
    def check(self, secret: str) -> str | None:
        return {"ctl": "control", "look": "view"}.get(secret)


class Injector:
    def __init__(self) -> None:
        self.keys: list[tuple[int, int, bool]] = []
        self.released: list[int] = []

    def pointer(self, owner: int, x: int, y: int, buttons: int) -> None:
        pass

    def wheel(self, owner: int, x: int, y: int, dx: int, dy: int) -> None:
        pass

    def key(self, owner: int, keysym: int, down: bool) -> None:
        self.keys.append((owner, keysym, down))

    def release_all(self, owner: int) -> None:
        self.released.append(owner)


@pytest.fixture
def server(tmp_path: Path) -> HostServer:
    settings = HostSettings(config_dir=tmp_path, record_dir=tmp_path / "rec")
    source = ScreenSource(Capturer())  # type: ignore[arg-type]
    return HostServer(settings, source, Passwords(), ssl.create_default_context(),
                      injector=Injector())


async def _log_in(transport: MemoryTransport, secret: str) -> tuple[Session, object]:
    """The viewer's side of the handshake; returns its session and the host's answer."""
    viewer = Session(Role.VIEWER, 0.0)
    hello = viewer.receive(await transport.to_viewer.get(), 0.0)
    assert isinstance(hello, Hello)
    auth = Auth(PROTOCOL_VERSION, hello.nonce, "password", secret, "test viewer")
    await transport.to_host.put(viewer.send(auth, 0.0))
    return viewer, viewer.receive(await transport.to_viewer.get(), 0.0)


def _viewer_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("viewer-")]


async def test_a_viewer_is_served_and_gives_everything_back(server: HostServer) -> None:
    transport = MemoryTransport()
    serving = asyncio.create_task(server.serve_transport(transport))
    viewer, welcome = await _log_in(transport, "ctl")
    assert isinstance(welcome, Welcome) and welcome.role is Access.CONTROL
    (conn,) = server.viewers.values()
    assert conn.access is Access.CONTROL and conn.recorder is not None
    # The first update is the whole screen; acknowledging it keeps the window open.
    update = viewer.receive(await transport.to_viewer.get(), 0.0)
    while not isinstance(update, Update):
        update = viewer.receive(await transport.to_viewer.get(), 0.0)
    await transport.to_host.put(viewer.send(Ack(update.seq), 0.0))
    await transport.to_host.put(viewer.send(Key(0x61, True), 0.0))  # a held key
    await transport.to_host.put(viewer.send(Close(int(CloseCode.NORMAL), "bye"), 0.0))
    await asyncio.wait_for(serving, 10)
    assert server.viewers == {}
    assert _viewer_tasks() == []
    assert not server.source._subscribers  # the sender left the screen source
    assert conn.recorder is None  # closed, with its reason
    injector = server.injector
    assert isinstance(injector, Injector)
    assert injector.keys == [(conn.viewer_id, 0x61, True)]
    assert conn.viewer_id in injector.released  # its held key is let go
    assert server.board.members == {}


async def test_a_vanished_viewer_is_torn_down_too(server: HostServer) -> None:
    transport = MemoryTransport()
    serving = asyncio.create_task(server.serve_transport(transport))
    await _log_in(transport, "look")
    assert len(server.viewers) == 1
    await transport.to_host.put(None)  # the peer is gone without a Close
    await asyncio.wait_for(serving, 10)  # serve_transport never raises
    assert server.viewers == {} and _viewer_tasks() == []
    assert not server.source._subscribers


async def test_a_malformed_message_closes_only_that_viewer(server: HostServer) -> None:
    good, bad = MemoryTransport(), MemoryTransport()
    serving_good = asyncio.create_task(server.serve_transport(good))
    await _log_in(good, "ctl")
    serving_bad = asyncio.create_task(server.serve_transport(bad))
    await _log_in(bad, "look")
    await bad.to_host.put('{"t":"key","keysym":"nope"}')
    await asyncio.wait_for(serving_bad, 10)
    assert bad.closed is not None and bad.closed[0] == CloseCode.PROTOCOL_ERROR
    # The Close frame told the viewer why, in one line.
    frames = []
    while not bad.to_viewer.empty():
        frames.append(bad.to_viewer.get_nowait())
    close = decode(frames[-1])
    assert isinstance(close, Close) and "keysym" in close.reason
    assert len(server.viewers) == 1 and not serving_good.done()
    await good.to_host.put(None)
    await asyncio.wait_for(serving_good, 10)


async def test_a_wrong_password_is_refused_with_its_reason(server: HostServer) -> None:
    transport = MemoryTransport()
    serving = asyncio.create_task(server.serve_transport(transport))
    _, answer = await _log_in(transport, "guess")
    assert isinstance(answer, Close) and answer.code == CloseCode.AUTH_FAILED
    assert answer.reason == "wrong password"
    await asyncio.wait_for(serving, 30)  # after the failed-login penalty (0.5 s the first time)
    assert server.viewers == {} and server.throttle.failures("memory") == 1
    assert server.unauth.count() == 0  # the unauthenticated slot is given back


async def test_a_silent_viewer_hits_the_sessions_handshake_deadline(tmp_path: Path) -> None:
    settings = HostSettings(config_dir=tmp_path)
    server = HostServer(settings, ScreenSource(Capturer()),  # type: ignore[arg-type]
                        Passwords(), ssl.create_default_context())
    transport = MemoryTransport()
    serving = asyncio.create_task(server.serve_transport(transport))
    await transport.to_viewer.get()  # the Hello; then the viewer says nothing
    await asyncio.wait_for(serving, 30)  # the session's 10 s handshake deadline ends it
    assert transport.closed is not None and transport.closed[0] == CloseCode.HANDSHAKE_TIMEOUT


async def test_the_host_pings_and_drops_a_viewer_that_stops_answering(
    server: HostServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's keepalive drives the host's side: a ping each interval, answered pongs
    keep the viewer, and a missing pong closes it UNRESPONSIVE."""
    import functools

    import rdesk.host.serve.server as server_module
    from rdesk.protocol.messages import Ping, Pong

    monkeypatch.setattr(server_module, "Session",
                        functools.partial(Session, ping_interval=0.05, ping_timeout=0.5))
    transport = MemoryTransport()
    serving = asyncio.create_task(server.serve_transport(transport))
    viewer, _ = await _log_in(transport, "look")
    pings = 0
    while pings < 3:  # answer three pings: the viewer stays
        message = viewer.receive(await transport.to_viewer.get(), 0.0)
        if isinstance(message, Ping):
            pings += 1
            await transport.to_host.put(viewer.send(Pong(message.id), 0.0))
        elif isinstance(message, Update):
            await transport.to_host.put(viewer.send(Ack(message.seq), 0.0))
    assert len(server.viewers) == 1 and not serving.done()
    # Then stop answering: the session's pong timeout ends it.
    await asyncio.wait_for(serving, 10)
    assert transport.closed is not None and transport.closed[0] == CloseCode.UNRESPONSIVE
    assert server.viewers == {}


async def test_a_viewer_that_loses_control_lets_go_of_its_keys(server: HostServer) -> None:
    """The board changes before deliver() is called: who lost control must be found against
    the holders of the previous delivery, or a held key stays pressed after a take-back."""
    transport = MemoryTransport()
    serving = asyncio.create_task(server.serve_transport(transport))
    viewer, welcome = await _log_in(transport, "ctl")
    assert isinstance(welcome, Welcome)
    for _ in range(100):  # the first control viewer is given control when it joins
        if server.board.may_input(welcome.viewer_id):
            break
        await asyncio.sleep(0.01)
    await transport.to_host.put(viewer.send(Key(0x61, True), 0.0))
    injector = server.injector
    assert isinstance(injector, Injector)
    for _ in range(100):
        if injector.keys:
            break
        await asyncio.sleep(0.01)
    assert injector.keys == [(welcome.viewer_id, 0x61, True)]
    injector.released.clear()
    server.deliver(server.board.take_local())  # the host's user takes control back
    assert injector.released == [welcome.viewer_id]
    await transport.to_host.put(None)
    await asyncio.wait_for(serving, 10)


@pytest.mark.parametrize("has_libyuv", [True, False])
async def test_the_host_says_at_start_when_video_conversion_lacks_libyuv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    has_libyuv: bool,
) -> None:
    """Without libyuv0 video works, at five times the conversion CPU: the host says so once,
    at start, instead of being silently slow."""
    from rdesk.host.video import encoder

    if not encoder.available():
        pytest.skip("PyAV with libx264 is not installed")
    monkeypatch.setattr(encoder, "libyuv", lambda: object() if has_libyuv else None)
    settings = HostSettings(config_dir=tmp_path, record_dir=tmp_path / "rec",
                            bind="127.0.0.1", port=0)
    server = HostServer(settings, ScreenSource(Capturer()),  # type: ignore[arg-type]
                        Passwords(), ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    with caplog.at_level(logging.WARNING, "rdesk.host.serve.server"):
        await server.start()
        await server.stop()
    said = [r.getMessage() for r in caplog.records if "libyuv" in r.getMessage()]
    assert len(said) == (0 if has_libyuv else 1), said
