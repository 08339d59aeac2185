"""Issue 16 in the browser: the page's H.264 path (core/video.js over WebCodecs) in Debian's
headless Chromium, fed real libx264 access units (PyAV), and hostile ones.

The page is served by a real host over real TLS (a secure context: WebCodecs exists only
there); the units go through the same FrameBuffer.paint the page uses, into an OffscreenCanvas
whose pixels are compared with the frames that were encoded.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from tests.e2e import test_browser as pages
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.e2e.test_browser import CHROMIUM, _https, _login, _wait_active
from tests.h264units import encode, panning, psnr, video_payload

pytest.importorskip("av")

browser = pages.browser
page_and_log = pages.page_and_log
page = pages.page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing")

W, H = 320, 240
#: x264 ultrafast at its default quality on the photo-like pan keeps well above this.
MIN_PSNR_DB = 30.0

# Paints updates (lists of [x, y, w, h, encoding, payload base64]) into an OffscreenCanvas
# through the page's own FrameBuffer + VideoStreams over the real WebCodecs; returns the
# canvas's RGBA (base64), the stream counters, the keyframe requests and how many
# VideoDecoders were made.
_PAINT = """async ([width, height, updates]) => {
    const { FrameBuffer } = await import("/core/framebuffer.js");
    const { VideoStreams } = await import("/core/video.js");
    let made = 0;
    class Counted extends VideoDecoder {
        constructor(init) { super(init); made++; }
    }
    const video = new VideoStreams({ VideoDecoder: Counted, EncodedVideoChunk });
    const asked = [];
    video.attach((m) => { asked.push(m); return true; });
    const canvas = new OffscreenCanvas(1, 1);
    const fb = new FrameBuffer(canvas.getContext("2d", { alpha: false }), { video });
    fb.resize(width, height);
    let seq = 0;
    const errors = [];
    for (const rects of updates) {
        const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const update = { seq: ++seq, exact: false, rects: rects.map(
            ([x, y, w, h, encoding, b64]) => ({ x, y, w, h, encoding, payload: bytes(b64) })) };
        try { await fb.paint(update); } catch (e) { errors.push(String(e)); }
    }
    const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    let bin = "";
    for (let k = 0; k < rgba.length; k += 8192) {
        bin += String.fromCharCode(...rgba.subarray(k, k + 8192));
    }
    return { rgba: btoa(bin), counts: video.counts, asked, made, errors,
             open: [...video.streams.keys()] };
}"""


def _paint(page: Any, host: RunningHost, updates: list[list[list[Any]]],
           size: tuple[int, int] = (W, H)) -> dict[str, Any]:
    page.goto(_https(host))
    result: dict[str, Any] = page.evaluate(_PAINT, [size[0], size[1], updates])
    rgba = np.frombuffer(base64.b64decode(result["rgba"]), np.uint8)
    result["rgb"] = rgba.reshape(size[1], size[0], 4)[:, :, :3]
    return result


def _rect(x: int, y: int, stream: int, key: bool, unit: bytes,
          size: tuple[int, int] = (W, H)) -> list[Any]:
    payload = base64.b64encode(video_payload(stream, key, unit)).decode()
    return [x, y, size[0], size[1], 5, payload]


def test_webcodecs_decodes_a_real_h264_stream(host: RunningHost, page: Any) -> None:
    frames = panning(W, H, 12)
    units = encode(frames)
    assert units[0][0] and not any(key for key, _ in units[1:])
    # On a 400x300 screen at (40, 30): the frame must land there, the rest stays black.
    result = _paint(page, host, [[_rect(40, 30, 3, key, unit)] for key, unit in units],
                    size=(400, 300))
    assert result["errors"] == [] and result["asked"] == []
    assert result["counts"]["decoded"] == len(units) and result["made"] == 1
    shown = result["rgb"][30:30 + H, 40:40 + W]
    assert psnr(shown, frames[-1]) >= MIN_PSNR_DB
    assert psnr(shown, frames[-1]) > psnr(shown, frames[-2]) + 3  # the last frame, not an old one
    assert not result["rgb"][:30].any() and not result["rgb"][:, :40].any()


def test_hostile_units_are_refused_without_breaking_the_page(host: RunningHost, page: Any) -> None:
    from tests.protocol.test_h264 import build_sps

    frames = panning(W, H, 6)
    units = encode(frames)
    key = units[0][1]
    # The same key unit with its SPS replaced by one declaring 50000x50000 (3125x3125 MBs).
    huge = b"\0\0\0\1" + build_sps(width_mbs=3125, height_units=3125, crop=None)
    start = key.index(b"\0\0\0\1\x68")  # the PPS and the slice follow the SPS
    forged = huge + key[start:]
    truncated = units[3][1][: len(units[3][1]) // 3]
    result = _paint(page, host, [
        [_rect(0, 0, 0, True, forged)],           # refused before any decoder: none is made
        [_rect(0, 0, 0, False, units[1][1])],     # no decoder on stream 0: dropped, keyframe
        [_rect(0, 0, 0, True, key)],              # a real stream starts
        [_rect(0, 0, 0, False, units[1][1])],
        [_rect(0, 0, 0, False, units[2][1])],
        [_rect(0, 0, 0, False, truncated)],       # corrupt: at worst this stream's decoder goes
        [_rect(0, 0, 1, False, units[4][1])],     # stream 1 never began: dropped
    ])
    assert result["errors"] == []  # nothing thrown: the connection would stay up
    assert result["counts"]["dropped"] >= 3
    # Key units were asked for streams 0 and 1, once each (rate-limited per stream).
    assert sorted(m["stream"] for m in result["asked"]) == [0, 1]
    assert result["made"] == 1  # the forged key unit never reached a decoder
    # The picture is the last good frame (frame 2, or the truncated frame 3 concealed).
    shown = result["rgb"]
    assert max(psnr(shown, frames[2]), psnr(shown, frames[3])) >= MIN_PSNR_DB - 6


def test_the_page_declares_h264_unless_turned_off(host: RunningHost, page: Any) -> None:
    _login(page, host)
    _wait_active(page)
    # Debian's Chromium decodes H.264 in WebCodecs on the https page (a secure context).
    assert page.get_attribute("body", "data-video") == "h264"
    page.goto(_https(host) + "?video=off")
    assert page.get_attribute("body", "data-video") == "off"
    page.fill("#password", PASSWORD)
    page.click("#connect")
    _wait_active(page)
    assert page.get_attribute("body", "data-video") == "off"
