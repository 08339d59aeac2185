"""Issue 20, a hostile host (the viewer's side): the work one update may cause is bounded, a
viewer refuses a screen larger than it accepts before allocating it, an oversize message is
reported as what it is, and the viewer's close reason is cut by bytes, not characters.

A corrupt image still closes the connection (docs/security.md says why): that is
``test_hostile.py``'s "payload not the declared codec".
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve

from rdesk.client.connection import ConnectionLost, connect
from rdesk.client.framebuffer import DEFAULT_MAX_SCREEN_PIXELS, Framebuffer
from rdesk.client.parts import abort
from rdesk.client.tls import client_ssl_context
from rdesk.host.security.tls import (
    certificate_fingerprint,
    ensure_host_certificate,
    server_ssl_context,
)
from rdesk.protocol import CloseCode, limits
from rdesk.protocol.codec import HEADER, RECT_HEADER, UPDATE_KIND, decode
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import ProtocolError


def _update(*rects: tuple[int, int, int, int, int, bytes], seq: int = 0) -> bytes:
    parts = [HEADER.pack(UPDATE_KIND, 0, len(rects), seq, 0)]
    for x, y, w, h, enc, payload in rects:
        parts.append(RECT_HEADER.pack(x, y, w, h, enc, 0, len(payload)) + payload)
    return b"".join(parts)


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


async def _against(tmp_path: Path, width: int, height: int,
                   then: Callable[[ServerConnection], Awaitable[None]]) -> Any:
    """Log a real viewer in to a hostile host announcing ``width``×``height``, which then
    runs ``then``; return what the viewer ended with (ConnectionLost or the exception)."""
    cert, key = ensure_host_certificate(tmp_path)

    async def hostile(ws: ServerConnection) -> None:
        await welcome(ws, width, height)
        await then(ws)
        await ws.wait_closed()

    async with serve(hostile, "127.0.0.1", 0, ssl=server_ssl_context(cert, key),
                     max_size=2**20) as server:
        port = server.sockets[0].getsockname()[1]
        try:
            conn = await connect(f"wss://127.0.0.1:{port}", "pw", known_hosts=None,
                                 pinned=certificate_fingerprint(cert))
        except Exception as exc:  # refused during the handshake
            return exc
        try:
            return await asyncio.wait_for(conn.closed, 20)
        finally:
            await conn.close()


async def test_an_update_touching_too_many_pixels_is_refused_before_any_copy(
    tmp_path: Path
) -> None:
    side = 4096
    copy = struct.pack("!HH", 0, 0)

    async def flood(ws: ServerConnection) -> None:
        # 1.4 KB asking for 64 full-screen copies: a billion pixels of work for the viewer.
        await ws.send(_update(*[(0, 0, side, side, Encoding.COPY, copy)] * 64))

    lost = await _against(tmp_path, side, side, flood)
    assert isinstance(lost, ConnectionLost) and lost.code == CloseCode.TOO_BIG
    assert "pixels" in str(lost) and "\n" not in str(lost)


def test_the_pixel_budget_allows_a_real_update() -> None:
    fb = Framebuffer(64, 64)
    whole = (0, 0, 64, 64, Encoding.COPY, struct.pack("!HH", 0, 0))
    # A scroll (a screen-sized copy) plus the whole screen repainted: twice the screen.
    update = decode(_update(whole, whole))
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
