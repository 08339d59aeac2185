"""The splice with real parts: size limit, binary only, no half-open splice, backpressure."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rdesk.protocol.errors import CloseCode
from rdesk.relay.messages import Connect, encode
from tests.relay.harness import (
    Relay,
    host_identity,
    linked,
    make_link,
    open_ws,
    other_tasks,
    quiet,
    running_relay,
    viewer,
)

LIMIT = 64 * 1024


class Host:
    """A rendezvous handler that echoes (or holds still) and records how its side ended."""

    def __init__(self, *, read: bool = True) -> None:
        self.ended: asyncio.Queue[tuple[int | None, str | None]] = asyncio.Queue()
        self.reading = asyncio.Event()
        if read:
            self.reading.set()
        self.data: asyncio.Queue[ClientConnection] = asyncio.Queue()
        self.received: list[bytes] = []

    async def __call__(self, ws: ClientConnection) -> None:
        await self.data.put(ws)
        try:
            await self.reading.wait()
            async for message in ws:
                assert isinstance(message, bytes)
                self.received.append(message)
                await ws.send(b"host:" + message[:16])
        except ConnectionClosed:
            pass
        finally:
            await self.ended.put((ws.close_code, ws.close_reason))


async def _closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code, ws.close_reason


@pytest.mark.parametrize("size", [LIMIT, LIMIT + 1])
async def test_the_per_message_limit_closes_both_sides(tmp_path: Path, size: int) -> None:
    host = Host()
    async with running_relay(tmp_path / "relay", splice_max_message=LIMIT) as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_rendezvous=host)):
            ws, answer = await viewer(relay, (await _host_id(relay)))
            assert answer == {"t": "spliced"}
            await ws.send(b"\x01" * size)
            if size <= LIMIT:
                assert await ws.recv() == b"host:" + b"\x01" * 16
                await ws.close()
                assert await host.ended.get() == (1000, "viewer closed")
            else:
                code, _ = await _closed(ws)
                assert code == CloseCode.TOO_BIG
                assert await host.ended.get() == (
                    CloseCode.TOO_BIG, "viewer sent a message over the splice limit")
            await quiet(relay, hosts=1)
        assert relay.last("splice_end")["code"] == (1000 if size <= LIMIT else 1009)
        await quiet(relay)
    assert not other_tasks()


async def _host_id(relay: Relay) -> str:
    return next(iter(relay.server.hosts.live.values())).host_id


async def test_a_text_message_in_the_splice_closes_both_sides(tmp_path: Path) -> None:
    host = Host()
    async with running_relay(tmp_path / "relay") as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_rendezvous=host)):
            ws, _ = await viewer(relay, await _host_id(relay))
            await ws.send("not ciphertext")
            reason = "viewer sent text: the splice is binary only"
            assert await _closed(ws) == (1003, reason)
            assert await host.ended.get() == (1003, reason)
            await quiet(relay, hosts=1)
        await quiet(relay)
    assert not other_tasks()


async def test_a_viewer_that_vanishes_takes_the_host_side_down(tmp_path: Path) -> None:
    host = Host()
    async with running_relay(tmp_path / "relay") as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_rendezvous=host)):
            ws, _ = await viewer(relay, await _host_id(relay))
            await ws.send(b"x")
            await ws.recv()
            ws.transport.abort()  # no close frame: the TCP connection just dies
            code, reason = await host.ended.get()
            assert (code, reason) == (CloseCode.GOING_AWAY, "viewer went away")
            await quiet(relay, hosts=1)
        await quiet(relay)
    assert not other_tasks()


async def test_the_host_closing_passes_its_code_to_the_viewer(tmp_path: Path) -> None:
    host = Host()
    async with running_relay(tmp_path / "relay") as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_rendezvous=host)):
            ws, _ = await viewer(relay, await _host_id(relay))
            data_ws = await host.data.get()
            await data_ws.close(4001, "authentication failed")
            assert await _closed(ws) == (4001, "authentication failed")
            await quiet(relay, hosts=1)
        await quiet(relay)
    assert not other_tasks()


async def test_a_host_that_stops_reading_stalls_the_viewer_instead_of_filling_the_relay(
    tmp_path: Path,
) -> None:
    host = Host(read=False)
    message = 1024 * 1024
    async with running_relay(tmp_path / "relay") as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_rendezvous=host)):
            ws, _ = await viewer(relay, await _host_id(relay))
            sent = 0

            async def flood() -> None:
                nonlocal sent
                for index in range(200):
                    await ws.send(index.to_bytes(4, "big") * (message // 4))
                    sent += 1

            task = asyncio.ensure_future(flood())
            # Wait for the flood to stall: the count stops moving while the host reads nothing.
            previous = -1
            while sent != previous:
                previous = sent
                await asyncio.sleep(0.5)
            assert not task.done()
            # What is in flight is bounded by queues and socket buffers, not by the flood.
            assert sent < 64, sent
            host.reading.set()
            replies = 0
            while replies < 200:
                await asyncio.wait_for(ws.recv(), 30)
                replies += 1
            await task
            assert [m[:4] for m in host.received] == [i.to_bytes(4, "big") for i in range(200)]
            await ws.close()
            await quiet(relay, hosts=1)
        await quiet(relay)
    assert not other_tasks()


async def test_a_viewer_that_sends_before_spliced_is_refused(tmp_path: Path) -> None:
    host = Host()
    async with running_relay(tmp_path / "relay") as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_rendezvous=host)):
            ws = await open_ws(relay, "/connect")
            await ws.send(encode(Connect(await _host_id(relay), 1)))
            await ws.send(b"too early")  # the splice does not exist yet
            reason = "viewer sent data before the splice"
            assert await _closed(ws) == (CloseCode.PROTOCOL_ERROR, reason)
            assert await host.ended.get() == (CloseCode.PROTOCOL_ERROR, reason)
            assert relay.last("connect_refused")["reason"] == reason
            assert not host.received
            await quiet(relay, hosts=1)
        await quiet(relay)
    assert not other_tasks()


async def test_the_relay_answers_pings_and_drops_a_peer_that_does_not(tmp_path: Path) -> None:
    host = Host()
    async with running_relay(tmp_path / "relay", ping_interval=0.2) as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_rendezvous=host)):
            ws, _ = await viewer(relay, await _host_id(relay))
            await asyncio.wait_for(await ws.ping(), 10)  # answered by the relay itself
            await ws.send(b"x")
            assert await ws.recv() == b"host:x"
            ws.transport.pause_reading()  # deaf: the relay's pings go unanswered
            reason = "viewer went away (no answer to ping)"
            assert await host.ended.get() == (CloseCode.GOING_AWAY, reason)
            await quiet(relay, hosts=1)
            assert relay.last("splice_end")["reason"] == reason
            ws.transport.abort()
        await quiet(relay)
    assert not other_tasks()
