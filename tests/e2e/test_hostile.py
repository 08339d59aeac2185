"""Attacks from the other side and floods (issue 8's battery, continued).

A hostile *host* sends a real viewer (the client library) malformed updates: the viewer
refuses each before decoding, closes with a reason, and nothing escapes as a traceback. And a
control viewer floods the host with 10,000 key events in a second: the host rate-limits, keeps
serving, and leaves no key held.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from rdesk.client.connection import Connection, ConnectionLost, connect
from rdesk.host.security.tls import (
    certificate_fingerprint,
    ensure_host_certificate,
    server_ssl_context,
)
from rdesk.protocol import CloseCode
from rdesk.protocol.codec import HEADER, RECT_HEADER, UPDATE_KIND
from rdesk.protocol.encodings import Encoding
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.e2e.scriptedhost import update_bytes
from tests.xserver import Recorder, Xvfb, pressed_keys


def _update(*rects: tuple[int, int, int, int, int, bytes]) -> bytes:
    return update_bytes(0, list(rects))


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring a size, with no pixel data behind it."""
    import zlib

    ihdr = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack("!I", len(ihdr)) + chunk
            + struct.pack("!I", zlib.crc32(chunk)))


BAD_UPDATES = {
    "outside the screen": _update((600, 0, 100, 10, Encoding.PNG, b"x")),
    "copy source outside": _update((0, 0, 10, 10, Encoding.COPY, struct.pack("!HH", 639, 0))),
    "declared image far too big": _update((0, 0, 64, 64, Encoding.PNG, _png_header(60000, 60000))),
    "payload not the declared codec": _update((0, 0, 8, 8, Encoding.JPEG, b"\x89PNG....")),
    "length wraps past the end": HEADER.pack(UPDATE_KIND, 0, 1, 0, 0)
    + RECT_HEADER.pack(0, 0, 8, 8, Encoding.PNG, 0, 0xFFFFFFFF),
    "zero-sized rect": _update((0, 0, 0, 8, Encoding.PNG, b"x")),
    "trailing garbage": _update((0, 0, 8, 8, Encoding.COPY, struct.pack("!HH", 0, 0))) + b"!",
}


@pytest.mark.parametrize("name", list(BAD_UPDATES))
async def test_viewer_refuses_a_hostile_hosts_update(name: str, tmp_path: Path) -> None:
    cert, key = ensure_host_certificate(tmp_path)
    closes: list[int | None] = []

    async def hostile(ws: ServerConnection) -> None:
        nonce = base64.b64encode(b"n" * 16).decode()
        await ws.send(json.dumps({"t": "hello", "protocol": "rdesk", "version": 1,
                                  "nonce": nonce, "methods": "password", "server": "evil"}))
        await ws.recv()  # the viewer's auth
        await ws.send(json.dumps({"t": "welcome", "role": "control", "viewer_id": 1,
                                  "width": 640, "height": 480, "name": "evil"}))
        await ws.send(BAD_UPDATES[name])
        try:
            await ws.wait_closed()
        finally:
            closes.append(ws.close_code)

    async with serve(hostile, "127.0.0.1", 0, ssl=server_ssl_context(cert, key)) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await connect(f"wss://127.0.0.1:{port}", "pw", known_hosts=None,
                             pinned=certificate_fingerprint(cert))
        lost = await asyncio.wait_for(conn.closed, 10)
        await conn.close()
    assert isinstance(lost, ConnectionLost)
    assert "\n" not in str(lost) and str(lost)
    assert lost.code in (CloseCode.PROTOCOL_ERROR, CloseCode.TOO_BIG)
    assert closes and closes[0] in (CloseCode.PROTOCOL_ERROR, CloseCode.TOO_BIG)


async def test_ten_thousand_keys_in_a_second(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    from rdesk.host.input.inject import PynputInjector

    # A small bucket (100 events/s, burst 200) so the check does not depend on how fast this
    # machine injects: 5000 presses could only all pass if the flood took over 48 seconds.
    host = host_factory(
        xvfb.display, injector=lambda display: PynputInjector(display, rate=100.0, burst=200.0)
    )
    with Recorder(xvfb.display) as rec:
        flood = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        watcher = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        try:
            await flood.wait_for(lambda: flood.holder == flood.viewer_id, 10)
            for _ in range(5000):  # 10,000 events, sent as fast as the socket takes them
                await flood.key(ord("f"), True)
                await flood.key(ord("f"), False)
            answer = await flood.sync(60)
            assert answer.ok
            # The host kept serving the other viewer meanwhile.
            await watcher.refresh()
            await watcher.wait_exact(30)
            await asyncio.sleep(0.5)
            presses = rec.typed_text().count("f")
            # The token bucket let through far fewer than the 5000 presses sent.
            assert 0 < presses < 2500
            assert pressed_keys(xvfb.display) == []  # no key left held down
        finally:
            await _close_all(flood, watcher)


async def _close_all(*conns: Connection) -> None:
    for conn in conns:
        await conn.close()
