"""The viewer's real Connection (rdesk.client) runs over a TunnelSocket as over a websocket:
authenticate, follow an update, acknowledge it, and learn why the host closed."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import time

import pytest
from PIL import Image

from rdesk.client.address import HostAddress
from rdesk.client.handshake import authenticate
from rdesk.client.running import Connection
from rdesk.client.timers import SessionTimers
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import CloseCode
from rdesk.protocol.messages import PROTOCOL_NAME, PROTOCOL_VERSION, Ack, Auth, Hello, Welcome
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role
from rdesk.protocol.updates import Rect, Update
from rdesk.tunnel.host_side import TunnelTransport, accept_tunnel
from rdesk.tunnel.viewer_side import open_tunnel
from tests.tunnel.identities import identity
from tests.tunnel.splice import Splice


def red_png(size: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (255, 0, 0)).save(out, "PNG")
    return out.getvalue()


async def host_session(transport: TunnelTransport, acked: asyncio.Event, close_frame: bool
                       ) -> Auth:
    session = Session(Role.HOST, time.monotonic(), ping_interval=None)
    nonce = base64.b64encode(os.urandom(16)).decode()
    hello = Hello(PROTOCOL_NAME, PROTOCOL_VERSION, nonce, "password", "tunnel-host")
    await transport.send(session.send(hello, time.monotonic()))
    auth = session.receive(await transport.recv(), time.monotonic())
    assert isinstance(auth, Auth)
    welcome = Welcome("control", 7, 32, 32, "tunnel-host")
    await transport.send(session.send(welcome, time.monotonic()))
    rect = Rect(0, 0, 8, 8, Encoding.PNG, red_png(8))
    await transport.send(session.send(Update(0, 1, (rect,), exact=True), time.monotonic()))
    while not isinstance(session.receive(await transport.recv(), time.monotonic()), Ack):
        pass
    acked.set()
    if close_frame:  # else the viewer learns why from the tunnel's own close record
        frame = session.close_frame(CloseCode.SHUTDOWN, "host shutting down")
        assert frame is not None
        await transport.send(frame)
    await transport.close(CloseCode.SHUTDOWN, "host shutting down")
    return auth


@pytest.mark.parametrize("close_frame", [True, False])
async def test_viewer_connection_over_the_tunnel(close_frame: bool) -> None:
    host_ident, tls = identity("a"), identity("relay-tls")
    async with Splice(tls.cert_path, tls.key_path) as splice, splice.host("a") as host_ws:
        acked = asyncio.Event()

        async def host() -> Auth:
            transport = await accept_tunnel(
                host_ws, host_ident.key, host_ident.cert_der, "relay")
            return await host_session(transport, acked, close_frame)

        host_task = asyncio.create_task(host())
        async with splice.viewer() as viewer_ws:
            sock = await open_tunnel(viewer_ws, host_ident.host_id)
            address = HostAddress("relay", splice.port)
            session = Session(Role.VIEWER, time.monotonic(), ping_interval=None)
            timers = SessionTimers(session, sock.send)  # type: ignore[arg-type]
            timer_task = asyncio.create_task(timers.run())
            welcome = await authenticate(
                sock, session, address, "s3cret", "alice", 5.0)  # type: ignore[arg-type]
            assert welcome.viewer_id == 7
            connection = Connection(  # type: ignore[arg-type]
                sock, session, address, welcome, sock.fingerprint, timers, timer_task)
            connection.start()
            lost = await connection.closed
            await acked.wait()
            assert connection.stats.updates == 1
            assert connection.framebuffer.size == (32, 32)
            assert "host shutting down" in str(lost) and lost.code == CloseCode.SHUTDOWN
        auth = await host_task
    assert auth.secret == "s3cret" and auth.name == "alice"
