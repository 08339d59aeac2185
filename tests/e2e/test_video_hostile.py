"""A hostile host's video (issue 16): what a viewer refuses, and that refusing closes nothing.

Real access units from libx264 (the host's own encoder), then cut, garbled, or given an SPS
declaring 50000x50000, sent by a hostile host over real TLS to the real viewer
(:func:`rdesk.client.connection.connect`): each unit is refused — the 50000x50000 one before
any decoder exists — the viewer asks for a key unit on that stream, acknowledges the update
and stays connected, and a good stream after them is decoded and painted. Only a malformed
video *header* closes the connection (1002). The decoder layer is also driven directly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from rdesk.client import video as client_video
from rdesk.client.connection import Connection, ConnectionLost, connect
from rdesk.client.framebuffer import Framebuffer
from rdesk.host.security.tls import (
    certificate_fingerprint,
    ensure_host_certificate,
    server_ssl_context,
)
from rdesk.host.video.encoder import H264Encoder
from rdesk.protocol import CloseCode
from rdesk.protocol.codec import decode
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.h264 import NAL_SPS, nal_units
from rdesk.protocol.updates import Rect, Update
from rdesk.protocol.video import VIDEO_HEADER, pack_header
from tests.e2e.scriptedhost import update_bytes
from tests.e2e.test_security_hostile_host import welcome
from tests.protocol.test_h264 import build_sps

pytest.importorskip("av", reason="PyAV is not installed (pip install 'rdesk[host]')")

W, H = 320, 240


def _units() -> tuple[bytes, bytes, np.ndarray]:
    """A key unit and the next unit of a real stream, and the frame they were cut from."""
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 255, (H, W, 4), dtype=np.uint8)
    frame[..., :3] = np.linspace(0, 255, W, dtype=np.uint8)[None, :, None]  # compressible
    encoder = H264Encoder((W, H), 2_000_000)
    key, is_key = encoder.encode(frame, (0, 0, W, H), key=True)
    nxt, _ = encoder.encode(frame, (0, 0, W, H), key=False)
    assert is_key
    return key, nxt, frame


def _huge(key: bytes) -> bytes:
    """``key`` with its SPS replaced by one declaring 50000x50000 (3125 macroblocks a side)."""
    units = list(nal_units(key))
    return b"".join(b"\0\0\0\1" + (build_sps(width_mbs=3125, height_units=3125, crop=None)
                                    if u[0] & 0x1F == NAL_SPS else u) for u in units)


def _rect(stream: int, key: bool, unit: bytes) -> Rect:
    return Rect(0, 0, W, H, Encoding.H264, pack_header(stream, key) + unit)


def test_the_decoder_layer_refuses_and_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    key, nxt, frame = _units()
    made: list[object] = []
    real = client_video._decoder

    def counting() -> object:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(client_video, "_decoder", counting)
    fb = Framebuffer(W, H, video=True)
    video = fb.video
    assert video is not None
    blank = np.asarray(fb.image).copy()
    for rect in (_rect(0, True, _huge(key)), _rect(1, False, nxt),
                 _rect(2, True, key[: len(key) // 2]), _rect(3, True, b"\0\0\1\x67garbage")):
        fb.apply(Update(0, 0, (rect,)))
        assert (np.asarray(fb.image) == blank).all()  # nothing painted, nothing raised
    assert len(made) == 1  # only the truncated unit (whose SPS is sound) reached a decoder
    assert video.take_requests(10.0) == [0, 1, 2, 3]
    assert video.take_requests(10.2) == []  # at most one request per stream per 0.5 s
    assert set(video.refused) == {"key unit refused", "no key unit yet", "decoder error"}
    # A good stream decodes and paints; a unit for another rectangle than its key is refused.
    fb.apply(Update(1, 0, (_rect(4, True, key), _rect(4, False, nxt))))
    shown = np.asarray(fb.image).astype(int)
    assert np.abs(shown - frame[..., 2::-1]).mean() < 8
    moved = Rect(2, 0, W, H, Encoding.H264, pack_header(4, False) + nxt)
    fb = Framebuffer(W + 2, H, video=True)
    fb.apply(Update(0, 0, (_rect(4, True, key), moved)))
    assert fb.video is not None and fb.video.take_requests(0.0) == [4]
    # A viewer that declared no video refuses the rect outright.
    with pytest.raises(RemoteProtocolError, match="declared no video"):
        Framebuffer(W, H).apply(Update(0, 0, (_rect(0, True, key),)))


async def _against(tmp_path: Path,
                   then: Callable[[ServerConnection, list[dict[str, Any]]], Awaitable[None]]
                   ) -> tuple[Connection, Any]:
    """A real viewer logged in to a hostile host that runs ``then`` (given the viewer's
    messages so far); the connection and how it ended."""
    cert, keyfile = ensure_host_certificate(tmp_path)

    async def hostile(ws: ServerConnection) -> None:
        await welcome(ws, W, H)
        await then(ws, [json.loads(await ws.recv())])
        await ws.close()

    async with serve(hostile, "127.0.0.1", 0, ssl=server_ssl_context(cert, keyfile)) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await connect(f"wss://127.0.0.1:{port}", "pw", known_hosts=None,
                             pinned=certificate_fingerprint(cert))
        try:
            return conn, await asyncio.wait_for(conn.closed, 30)
        finally:
            await conn.close()


async def _until_ack(ws: ServerConnection, seq: int, into: list[dict[str, Any]]) -> None:
    while True:
        message = json.loads(await ws.recv())
        into.append(message)
        if message == {"t": "ack", "seq": seq}:
            return


async def test_hostile_units_close_nothing_and_ask_for_key_units(tmp_path: Path) -> None:
    key, nxt, _ = _units()
    heard: list[dict[str, Any]] = []

    async def then(ws: ServerConnection, first: list[dict[str, Any]]) -> None:
        heard.extend(first)
        hostile = [(0, True, _huge(key)), (1, True, key[: len(key) // 2]),
                   (2, True, b"\0\0\0\1\x67" + bytes(40)), (3, False, nxt),
                   (4, True, key), (4, False, nxt)]
        for seq, (stream, is_key, unit) in enumerate(hostile):
            payload = pack_header(stream, is_key) + unit
            await ws.send(update_bytes(seq, [(0, 0, W, H, Encoding.H264, payload)]))
            await _until_ack(ws, seq, heard)

    conn, ended = await _against(tmp_path, then)
    # It offers hold times too; this host never answers ack_hold, so every ack above was
    # exactly {"t": "ack", "seq": N}, as a host of before the field needs (_until_ack).
    assert heard[0] == {"t": "video", "codecs": "h264,hold"}
    asked = sorted(m["stream"] for m in heard if m["t"] == "keyframe")
    assert asked == [0, 1, 2, 3]  # each refused stream, once; the good one never
    assert isinstance(ended, ConnectionLost) and ended.code == 1000  # the host hung up
    video = conn.framebuffer.video
    assert video is not None and video.decoded == 2


@pytest.mark.parametrize("header", [b"\x08\x01\x00\x00", b"\x00\x03\x00\x00",
                                    b"\x00\x01\x00\x01"])
async def test_a_malformed_video_header_closes_with_1002(tmp_path: Path, header: bytes) -> None:
    key, _, _ = _units()
    assert len(header) == VIDEO_HEADER.size
    with pytest.raises(RemoteProtocolError):
        decode(update_bytes(0, [(0, 0, W, H, Encoding.H264, header + key)]))

    async def then(ws: ServerConnection, _: list[dict[str, Any]]) -> None:
        await ws.send(update_bytes(0, [(0, 0, W, H, Encoding.H264, header + key)]))
        await ws.wait_closed()

    _, ended = await _against(tmp_path, then)
    assert isinstance(ended, ConnectionLost) and ended.code == CloseCode.PROTOCOL_ERROR
