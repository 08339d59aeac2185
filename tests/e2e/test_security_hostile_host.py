"""Issue 20, a hostile host (the viewer's side): the work one update may cause is bounded, a
viewer refuses a screen larger than it accepts before allocating it, an oversize message is
reported as what it is, and the viewer's close reason is cut by bytes, not characters.

A corrupt image still closes the connection (docs/security.md says why): that is
``test_hostile.py``'s "payload not the declared codec".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from rdesk.client.connection import Connection, ConnectionLost, connect
from rdesk.client.framebuffer import DEFAULT_MAX_SCREEN_PIXELS, UPDATE_BUDGET, Framebuffer
from rdesk.client.parts import abort
from rdesk.client.tls import client_ssl_context
from rdesk.host.security.tls import (
    certificate_fingerprint,
    ensure_host_certificate,
    server_ssl_context,
)
from rdesk.protocol import CloseCode, limits
from rdesk.protocol.codec import decode
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import ProtocolError
from tests.e2e.scriptedhost import update_bytes


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def welcome(ws: ServerConnection, width: int, height: int) -> None:
    """Play a host's part of the handshake: hello, take any auth, welcome at that size."""
    nonce = base64.b64encode(b"n" * 16).decode()
    await ws.send(json.dumps({"t": "hello", "protocol": "rdesk", "version": 1,
                              "nonce": nonce, "methods": "password", "server": "evil"}))
    await ws.recv()
    await ws.send(json.dumps({"t": "welcome", "role": "control", "viewer_id": 1,
                              "width": width, "height": height, "name": "evil"}))


@contextlib.asynccontextmanager
async def hostile_host(tmp_path: Path, width: int, height: int,
                       then: Callable[[ServerConnection], Awaitable[None]],
                       **options: Any) -> AsyncIterator[Connection]:
    """Log a real viewer (``connect(**options)``) in over real TLS to a scripted hostile host
    announcing ``width``×``height``, which then runs ``then``; yield the viewer's
    connection (closed on exit)."""
    cert, key = ensure_host_certificate(tmp_path)

    async def hostile(ws: ServerConnection) -> None:
        await welcome(ws, width, height)
        await then(ws)
        await ws.wait_closed()

    async with serve(hostile, "127.0.0.1", 0, ssl=server_ssl_context(cert, key),
                     max_size=2**20) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await connect(f"wss://127.0.0.1:{port}", "pw", known_hosts=None,
                             pinned=certificate_fingerprint(cert), **options)
        try:
            yield conn
        finally:
            await conn.close()


async def _against(tmp_path: Path, width: int, height: int,
                   then: Callable[[ServerConnection], Awaitable[None]]) -> Any:
    """Run :func:`hostile_host`; return what the viewer ended with (ConnectionLost or the
    exception that refused it during the handshake)."""
    try:
        async with hostile_host(tmp_path, width, height, then) as conn:
            return await asyncio.wait_for(conn.closed, 20)
    except Exception as exc:
        return exc


async def test_an_update_touching_too_many_pixels_is_refused_before_any_copy(
    tmp_path: Path
) -> None:
    side = 4096
    copy = struct.pack("!HH", 0, 0)

    async def flood(ws: ServerConnection) -> None:
        # 1.4 KB asking for 64 full-screen copies: a billion pixels of work for the viewer.
        await ws.send(update_bytes(0, [(0, 0, side, side, Encoding.COPY, copy)] * 64))

    lost = await _against(tmp_path, side, side, flood)
    assert isinstance(lost, ConnectionLost) and lost.code == CloseCode.TOO_BIG
    assert "pixels" in str(lost) and "\n" not in str(lost)


def test_the_pixel_budget_allows_a_real_update() -> None:
    fb = Framebuffer(64, 64)
    whole = (0, 0, 64, 64, Encoding.COPY, struct.pack("!HH", 0, 0))
    # A scroll (a screen-sized copy) plus the whole screen repainted: twice the screen.
    update = decode(update_bytes(0, [whole, whole]))
    assert fb.apply(update)  # type: ignore[arg-type]


async def test_a_screen_over_the_viewers_limit_is_refused_before_allocation(
    tmp_path: Path
) -> None:
    async def nothing(ws: ServerConnection) -> None:
        return None

    assert DEFAULT_MAX_SCREEN_PIXELS < 16384 * 16384
    before = _rss()
    lost = await _against(tmp_path, 16384, 16384, nothing)
    grown = _rss() - before
    assert "16384x16384" in str(lost) and "\n" not in str(lost)
    assert getattr(lost, "code", CloseCode.TOO_BIG) == CloseCode.TOO_BIG
    assert grown < 100 * 1024 * 1024, grown  # not the 805 MB a 16384² RGB image takes
    with pytest.raises(ProtocolError, match="limit"):
        Framebuffer(5000, 5000, max_pixels=4000 * 4000)
    assert Framebuffer(5000, 5000, max_pixels=5000 * 5000).size == (5000, 5000)


async def test_an_oversize_message_is_reported_as_such(tmp_path: Path) -> None:
    async def too_big(ws: ServerConnection) -> None:
        await ws.send(b"\x00" * (limits.MAX_UPDATE_MESSAGE + 1))

    lost = await _against(tmp_path, 640, 480, too_big)
    assert isinstance(lost, ConnectionLost) and lost.code == CloseCode.TOO_BIG
    assert "connection lost" not in str(lost)
    assert f"{limits.MAX_UPDATE_MESSAGE}" in str(lost)


async def test_the_viewers_close_reason_is_cut_by_bytes(tmp_path: Path) -> None:
    seen: list[tuple[int | None, str | None]] = []

    async def listen(ws: ServerConnection) -> None:
        await ws.wait_closed()
        seen.append((ws.close_code, ws.close_reason))

    cert, key = ensure_host_certificate(tmp_path)
    async with serve(listen, "127.0.0.1", 0, ssl=server_ssl_context(cert, key)) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await ws_connect(f"wss://127.0.0.1:{port}", ssl=client_ssl_context())
        await abort(ws, None, CloseCode.PROTOCOL_ERROR, "é" * 100)  # 200 bytes of UTF-8
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)
    assert seen and seen[0][0] == CloseCode.PROTOCOL_ERROR  # not 1000 or 1006
    assert seen[0][1] and len(seen[0][1].encode()) <= 123 and set(seen[0][1]) == {"é"}


SIDE = 2048


def _costliest(seq: int, side: int = SIDE) -> bytes:
    """An update touching the most pixels one may: UPDATE_BUDGET full-screen copies."""
    whole = (0, 0, side, side, Encoding.COPY, struct.pack("!HH", 0, 0))
    return update_bytes(seq, [whole] * UPDATE_BUDGET)


async def test_a_conforming_but_costly_host_is_slowed_while_pings_go_on(tmp_path: Path) -> None:
    # A screen small enough that this machine could paint these far faster than the budget
    # allows (a large one is slowed by the CPU itself): the budget is what slows it.
    total, side = 20, 512

    async def costly(ws: ServerConnection) -> None:
        # A host keeping to a window of 2, every update as costly as allowed.
        await ws.send(_costliest(1, side))
        await ws.send(_costliest(2, side))
        sent = 2
        async for frame in ws:
            message = json.loads(frame)
            if message["t"] == "ack" and sent < total:
                sent += 1
                await ws.send(_costliest(sent, side))
            elif message["t"] == "ping":
                await ws.send(json.dumps({"t": "pong", "id": message["id"]}))

    async with hostile_host(tmp_path, side, side, costly, video=False) as conn:
        pongs_during = 0
        while conn.stats.updates < total:
            assert await conn.ping()
            await conn.wait_for(lambda n=conn.stats.pongs: conn.stats.pongs > n, 10)
            if conn.stats.updates < total:
                pongs_during += 1
        assert not conn.closed.done()
    # 60 screens against a budget of PAINT_BURST at once and PAINT_RATE a second: the
    # painter waited, so the host (waiting for acks) was slowed; the loop kept answering.
    assert conn.painter.throttled >= 1
    assert pongs_during >= 2


async def test_a_host_ignoring_acks_cannot_stall_the_viewer_and_is_closed(
    tmp_path: Path
) -> None:
    seen: dict[str, int] = {}

    async def flood(ws: ServerConnection) -> None:
        for seq in range(1, 11):
            await ws.send(_costliest(seq))
        await ws.send(json.dumps({"t": "ping", "id": 7}))
        acks = 0
        async for frame in ws:
            message = json.loads(frame)
            if message["t"] == "ack":
                acks += 1
            elif message["t"] == "pong":
                break
        seen["acks before the pong"] = acks
        with contextlib.suppress(ConnectionClosed):  # the viewer closes part way
            for seq in range(11, 11 + limits.MAX_IN_FLIGHT):
                await ws.send(_costliest(seq))

    async with hostile_host(tmp_path, SIDE, SIDE, flood, video=False) as conn:
        lost = await asyncio.wait_for(conn.closed, 30)
    # The pong came back while most of the ten updates before the ping were still unpainted
    # (painting them all first, on the loop, would have acked all ten before it).
    assert seen["acks before the pong"] < 10
    assert isinstance(lost, ConnectionLost) and lost.code == CloseCode.PROTOCOL_ERROR
    assert "without waiting for acknowledgements" in str(lost) and "\n" not in str(lost)
    assert conn.painter.stopping.is_set()
