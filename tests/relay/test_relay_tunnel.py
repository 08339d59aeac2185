"""The relay carrying the real end-to-end tunnel: a viewer reaches a host by its ID alone.

The host's RelayLink answers each rendezvous with ``accept_tunnel``; the viewer opens the
tunnel over its spliced ``/connect`` websocket, checking the host's key against the ID. The
largest tunnel record must cross the splice whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rdesk.common.transport import TransportClosed
from rdesk.relay.messages import Connect, encode
from rdesk.tunnel.errors import TunnelError
from rdesk.tunnel.host_side import accept_tunnel
from rdesk.tunnel.viewer_side import open_tunnel
from rdesk.tunnel.wire import MAX_RECORD_PAYLOAD, MAX_WIRE_MESSAGE
from tests.relay.harness import (
    Identity,
    host_identity,
    linked,
    make_link,
    open_ws,
    other_tasks,
    quiet,
    running_relay,
)


def tunnel_host(identity: Identity,
                ended: asyncio.Queue[str]) -> Callable[[ClientConnection], Awaitable[None]]:
    """A rendezvous handler serving an echo inside the tunnel; how it ended goes to ``ended``."""

    async def serve(data_ws: ClientConnection) -> None:
        try:
            transport = await accept_tunnel(data_ws, identity.key, identity.cert_der, "relay")
        except TunnelError as exc:
            await ended.put(f"refused: {exc}")
            return
        try:
            while True:
                frame = await transport.recv()
                await transport.send(frame if isinstance(frame, str) else b"host:" + frame)
        except TransportClosed as exc:
            await ended.put(str(exc))

    return serve


async def test_a_viewer_with_only_the_id_reaches_the_host_through_the_tunnel(
    tmp_path: Path,
) -> None:
    assert MAX_WIRE_MESSAGE <= 8 * 1024 * 1024 + 64 * 1024  # the relay's default splice limit
    ended: asyncio.Queue[str] = asyncio.Queue()
    identity = host_identity(tmp_path / "host")
    async with running_relay(tmp_path / "relay") as relay:
        link = make_link(relay, identity, on_rendezvous=tunnel_host(identity, ended))
        async with linked(link):
            ws = await open_ws(relay, "/connect", max_size=MAX_WIRE_MESSAGE)
            await ws.send(encode(Connect(link.host_id, 1)))
            assert await ws.recv() == '{"t":"spliced"}'
            tunnel = await open_tunnel(ws, link.host_id)
            assert tunnel.host_id == link.host_id
            await tunnel.send("a text message")
            assert await tunnel.recv() == "a text message"
            largest = b"\xa5" * (MAX_RECORD_PAYLOAD - len(b"host:"))
            await tunnel.send(largest)
            assert await tunnel.recv() == b"host:" + largest
            await tunnel.close()
            assert (await asyncio.wait_for(ended.get(), 10)).startswith(
                "viewer closed the tunnel")
            await quiet(relay, hosts=1)
        end = relay.last("splice_end")
        assert end["code"] == 1000 and end["viewer_bytes"] > MAX_RECORD_PAYLOAD
        await quiet(relay)
    assert not other_tasks()


async def test_a_viewer_asking_for_another_id_is_never_given_a_tunnel(tmp_path: Path) -> None:
    ended: asyncio.Queue[str] = asyncio.Queue()
    identity = host_identity(tmp_path / "host")
    stranger = host_identity(tmp_path / "stranger")
    async with running_relay(tmp_path / "relay") as relay:
        link = make_link(relay, identity, on_rendezvous=tunnel_host(identity, ended))
        stranger_id = make_link(relay, stranger).host_id
        async with linked(link):
            ws = await open_ws(relay, "/connect", max_size=MAX_WIRE_MESSAGE)
            await ws.send(encode(Connect(link.host_id, 1)))
            await ws.recv()
            # A viewer that wants the stranger but is spliced to this host (as a lying relay
            # would do) gets no tunnel: the host refuses a hello for another ID.
            with pytest.raises(TunnelError,
                               match=f"this host is {link.host_id}, not {stranger_id}"):
                await open_tunnel(ws, stranger_id)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert (await asyncio.wait_for(ended.get(), 10)).startswith("refused: ")
            await quiet(relay, hosts=1)
        await quiet(relay)
    assert not other_tasks()
