"""Both adapters over real TLS websockets through a splicing relay on 127.0.0.1, carrying rdesk
protocol frames; and the same relay turned hostile."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import ConnectionClosedError

from rdesk.common.transport import TransportClosed
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import CloseCode
from rdesk.protocol.fingerprint import key_fingerprint
from rdesk.protocol.messages import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Close,
    Hello,
    Welcome,
)
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role
from rdesk.protocol.updates import Rect, Update
from rdesk.tunnel import HostIdentityError, TunnelError
from rdesk.tunnel.host_side import TunnelTransport, accept_tunnel
from rdesk.tunnel.viewer_side import TunnelSocket, open_tunnel
from rdesk.tunnel.wire import Kind, parse_client_hello
from tests.tunnel.identities import identity
from tests.tunnel.splice import Splice, Tamper, honest

#: A big update: a rectangle of 2 MiB, so records far beyond one TLS record are carried.
PAYLOAD = os.urandom(2 * 1024 * 1024)


def relay(tamper: Tamper = honest, route: object = None) -> Splice:
    ident = identity("relay-tls")
    return Splice(ident.cert_path, ident.key_path, tamper, route)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def tunnelled(
    tamper: Tamper = honest, *, pinned: bool = False
) -> AsyncIterator[tuple[TunnelSocket, TunnelTransport]]:
    """A tunnel open from a viewer to host "a" through a relay that applies ``tamper`` to what
    it splices (with ``pinned``, the viewer pins the host's key): both of its ends."""
    host_ident = identity("a")
    async with relay(tamper) as splice, splice.host("a") as host_ws:
        accepted = asyncio.create_task(
            accept_tunnel(host_ws, host_ident.key, host_ident.cert_der, "relay"))
        async with splice.viewer() as viewer_ws:
            pin = key_fingerprint(host_ident.cert_der) if pinned else None
            sock = await open_tunnel(viewer_ws, host_ident.host_id, pin)
            yield sock, await accepted


async def serve_host(transport: TunnelTransport) -> list[object]:
    """The host's half of an rdesk session: Hello, Auth, Welcome, one big Update, Close."""
    session = Session(Role.HOST, 0.0, ping_interval=None)
    nonce = base64.b64encode(os.urandom(16)).decode()
    await transport.send(session.send(Hello(PROTOCOL_NAME, PROTOCOL_VERSION, nonce,
                                            "password", "tunnel-host"), 0.0))
    got = [session.receive(await transport.recv(), 0.0)]
    await transport.send(session.send(Welcome("control", 1, 640, 480, "tunnel-host"), 0.0))
    rect = Rect(0, 0, 64, 64, Encoding.JPEG, PAYLOAD)
    await transport.send(session.send(Update(0, 1, (rect,)), 0.0))
    got.append(session.receive(await transport.recv(), 0.0))  # the Ack
    frame = session.close_frame(CloseCode.SHUTDOWN, "host going away")
    assert frame is not None
    await transport.send(frame)
    await transport.close(CloseCode.SHUTDOWN, "host going away")
    return got


async def view(sock: TunnelSocket) -> list[object]:
    """The viewer's half, reading with ``async for`` as the viewer's Connection does."""
    session = Session(Role.VIEWER, 0.0, ping_interval=None)
    got: list[object] = []
    with pytest.raises(ConnectionClosedError) as info:  # 4006 is not a "clean" code
        async for data in sock:
            message = session.receive(data, 0.0)
            got.append(message)
            if isinstance(message, Hello):
                assert session.nonce is not None
                await sock.send(session.send(
                    Auth(PROTOCOL_VERSION, session.nonce, "password", "s3cret", "alice"), 0.0))
            elif isinstance(message, Update):
                await sock.send(session.send(Ack(message.seq), 0.0))
    assert info.value.rcvd is not None and info.value.rcvd.code == CloseCode.SHUTDOWN
    assert info.value.sent is not None and info.value.rcvd_then_sent is True
    return got


async def test_rdesk_session_through_the_tunnel_and_a_relay() -> None:
    host_ident = identity("a")
    async with relay() as splice, splice.host("a") as host_ws:
        async def host_side() -> list[object]:
            transport = await accept_tunnel(host_ws, host_ident.key, host_ident.cert_der,
                                            "relay")
            assert transport.remote == "relay" and transport.peer_certificate is None
            return await serve_host(transport)

        host_task = asyncio.create_task(host_side())
        async with splice.viewer() as viewer_ws:
            sock = await open_tunnel(viewer_ws, host_ident.host_id)
            assert sock.host_id == host_ident.host_id
            assert sock.peer_certificate == host_ident.cert_der
            assert sock.close_code is None
            viewer_got = await view(sock)
        host_got = await host_task
    assert [type(m) for m in viewer_got] == [Hello, Welcome, Update, Close]
    update = viewer_got[2]
    assert isinstance(update, Update) and update.rects[0].payload == PAYLOAD
    assert isinstance(host_got[0], Auth) and host_got[0].secret == "s3cret"
    assert sock.close_code == CloseCode.SHUTDOWN and sock.close_reason == "host going away"
    assert sock.error is None
    # The relay saw only tunnel messages: binary, and no plaintext of the session in them.
    assert all(isinstance(data, bytes) for _, data in splice.seen)
    assert not any(b"s3cret" in data or PAYLOAD[:64] in data  # type: ignore[operator]
                   for _, data in splice.seen)


async def test_clean_close_from_the_viewer_is_ok_on_both_sides() -> None:
    async with tunnelled() as (sock, transport):
        await sock.send("hi")
        assert await transport.recv() == "hi"
        host_reads = asyncio.create_task(transport.recv())
        await sock.close(1000, "done")
        with pytest.raises(TransportClosed, match="viewer closed the tunnel: done"):
            await host_reads
        assert [m async for m in sock] == []  # ends quietly: ConnectionClosedOK
        assert sock.close_code == 1000 and sock.close_reason == "done"
        await sock.close()  # idempotent
        await transport.close(1000, "")  # idempotent, never raises


async def test_relay_splicing_to_another_host_that_answers_is_refused_before_any_record() -> None:
    """The relay sends the viewer to host B and rewrites the ID: B answers with its own
    genuine key and certificate; the viewer refuses and sends nothing more."""
    wanted, other = identity("a"), identity("b")

    def rewrite(direction: str, index: int, data: str | bytes) -> list[str | bytes]:
        if direction == "up" and index == 0:
            assert isinstance(data, bytes)
            hello = parse_client_hello(data)
            return [dataclasses.replace(hello, host_id=other.host_id).encode()]
        return [data]

    async with relay(rewrite) as splice, splice.host("b") as host_ws:
        host_task = asyncio.create_task(
            accept_tunnel(host_ws, other.key, other.cert_der, "relay"))
        async with splice.viewer() as viewer_ws:
            with pytest.raises(HostIdentityError, match=f"has ID {other.host_id}"):
                await open_tunnel(viewer_ws, wanted.host_id)
        with pytest.raises(TunnelError, match="closed during the tunnel handshake"):
            await host_task
    assert [d for d, _ in splice.seen].count("up") == 1  # the ClientHello, nothing else


async def test_relay_sending_the_viewer_to_another_host_is_refused_by_it() -> None:
    wanted, other = identity("a"), identity("b")
    async with relay() as splice, splice.host("b") as host_ws:
        host_task = asyncio.create_task(
            accept_tunnel(host_ws, other.key, other.cert_der, "relay"))
        async with splice.viewer() as viewer_ws:
            with pytest.raises(TunnelError, match=f"this host is {other.host_id}"):
                await open_tunnel(viewer_ws, wanted.host_id)
        with pytest.raises(TunnelError, match=f"this host is {other.host_id}") as info:
            await host_task
        assert info.value.code == CloseCode.POLICY


def _on_third_upstream_record(change: str) -> Tamper:
    def tamper(direction: str, index: int, data: str | bytes) -> list[str | bytes]:
        # Upstream 0 is the ClientHello, 1 Finished, 2 the first record, 3 the second.
        if direction != "up" or index != 3:
            return [data]
        assert isinstance(data, bytes) and data[0] in (Kind.TEXT, Kind.BINARY)
        if change == "flip":
            return [data[:-1] + bytes([data[-1] ^ 0x80])]
        if change == "replay":
            return [data, data]
        if change == "drop":
            return []
        return [data[:-1]]  # cut

    return tamper


@pytest.mark.parametrize("change", ["flip", "replay", "drop", "cut"])
async def test_tampered_records_break_the_tunnel_on_both_sides(change: str) -> None:
    async with tunnelled(_on_third_upstream_record(change)) as (sock, transport):
        for message in ("one", "two", "three"):
            await sock.send(message)
        assert await transport.recv() == "one"
        if change == "replay":  # the genuine second arrives; its replay is refused
            assert await transport.recv() == "two"
        with pytest.raises(TransportClosed, match="tunnel broken: record failed"):
            await transport.recv()
        assert transport.channel.error is not None
        # The viewer learns the tunnel was cut: no authenticated close, code 1006.
        with pytest.raises(ConnectionClosedError) as info:
            await sock.recv()
        assert info.value.rcvd is None
        assert sock.close_code == 1006


async def test_text_injected_by_the_relay_breaks_the_tunnel() -> None:
    def inject(direction: str, index: int, data: str | bytes) -> list[str | bytes]:
        return [data, '{"t":"auth"}'] if (direction, index) == ("down", 1) else [data]

    async with tunnelled(inject) as (sock, transport):
        await transport.send("genuine")
        assert await sock.recv() == "genuine"
        with pytest.raises(ConnectionClosedError) as info:
            await sock.recv()
        assert isinstance(info.value.__cause__, TunnelError)
        assert sock.error is not None and "binary; got text" in sock.error.reason
        with pytest.raises(ConnectionClosedError):
            await sock.send("after the break")


async def test_a_relay_that_swallows_the_hello_times_the_handshake_out() -> None:
    host_ident = identity("a")

    def swallow(direction: str, index: int, data: str | bytes) -> list[str | bytes]:
        return []

    async with relay(swallow) as splice, splice.host("a") as host_ws:
        host_task = asyncio.create_task(
            accept_tunnel(host_ws, host_ident.key, host_ident.cert_der, "relay", timeout=0.3))
        async with splice.viewer() as viewer_ws:
            with pytest.raises(TunnelError, match="no tunnel handshake within") as info:
                await open_tunnel(viewer_ws, host_ident.host_id, timeout=0.2)
            assert info.value.code == CloseCode.HANDSHAKE_TIMEOUT
        with pytest.raises(TunnelError):
            await host_task


async def test_text_and_binary_both_ways_and_the_websockets_surface() -> None:
    async with tunnelled(pinned=True) as (sock, transport):
        for message in ("text", b"\x00binary", "", b""):
            await sock.send(message)
            assert await transport.recv() == message
            await transport.send(message)
            got = await sock.recv()
            assert got == message and type(got) is type(message)
        assert sock.protocol.close_rcvd is None and sock.close_reason is None
        reading = asyncio.create_task(sock.recv())  # the viewer always has a reader
        await transport.close(4004, "policy")
        with pytest.raises(ConnectionClosedError) as info:
            await reading
        assert info.value.rcvd is not None and info.value.rcvd.code == 4004
        assert sock.protocol.close_rcvd is not None
        assert sock.protocol.close_rcvd.reason == "policy"
        with pytest.raises(TransportClosed):
            await transport.send("after close")


async def test_the_relay_sees_no_close_reason_of_the_session() -> None:
    host_ident = identity("a")
    async with relay() as splice, splice.host("a") as host_ws:
        accepted = asyncio.create_task(
            accept_tunnel(host_ws, host_ident.key, host_ident.cert_der, "relay"))
        async with splice.viewer() as viewer_ws:
            sock = await open_tunnel(viewer_ws, host_ident.host_id)
            transport = await accepted
            reading = asyncio.create_task(transport.recv())
            await sock.close(4001, "wrong password for alice")
            with pytest.raises(TransportClosed, match="wrong password for alice"):
                await reading
        # What the relay's websockets received as close frames: normal, no reason.
        assert viewer_ws.close_code == host_ws.close_code == 1000
        assert viewer_ws.close_reason == host_ws.close_reason == ""
    assert not any(b"alice" in data for _, data in splice.seen)  # type: ignore[operator]


async def test_a_used_up_key_closes_both_sides(monkeypatch: pytest.MonkeyPatch) -> None:
    from rdesk.tunnel import keys

    async with tunnelled() as (sock, transport):
        monkeypatch.setattr(keys, "MAX_SEALED_BYTES", 1000)
        with pytest.raises(ConnectionClosedError):
            await sock.send(b"z" * 2000)
        assert sock.error is not None and sock.error.code == CloseCode.GOING_AWAY
        with pytest.raises(TransportClosed):
            await transport.recv()
