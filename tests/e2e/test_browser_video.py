"""Issue 16 in the browser: the page's H.264 path (core/video.js over WebCodecs) in Debian's
headless Chromium, fed real libx264 access units (PyAV), and hostile ones.

The page is served by a real host over real TLS (a secure context: WebCodecs exists only
there); the units go through the same FrameBuffer.paint the page uses, into an OffscreenCanvas
whose pixels are compared with the frames that were encoded.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.e2e import test_browser as pages
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.e2e.scriptedhost import ScriptedHost
from tests.e2e.test_adaptation import wait_hold
from tests.e2e.test_browser import CHROMIUM, _canvas_image, _https, _login, _wait_active
from tests.h264units import encode, panning, psnr, video_payload
from tests.xserver import Xvfb

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


@pytest.mark.parametrize(("profile", "preset", "profile_idc"),
                         [("baseline", "ultrafast", 66), ("main", "veryfast", 77)])
def test_webcodecs_decodes_a_real_h264_stream(host: RunningHost, page: Any, profile: str,
                                              preset: str, profile_idc: int) -> None:
    from rdesk.protocol.h264 import check_key_unit

    frames = panning(W, H, 12)
    units = encode(frames, profile=profile, preset=preset)
    assert units[0][0] and not any(key for key, _ in units[1:])
    assert check_key_unit(units[0][1], (W, H)).profile_idc == profile_idc
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


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[ScriptedHost]:
    host = ScriptedHost(tmp_path, 640, 480).start()
    try:
        yield host
    finally:
        host.stop()


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(out, "PNG")
    return out.getvalue()


def test_the_page_shows_a_video_stream_in_order_with_tiles(
    scripted: ScriptedHost, page_and_log: tuple[Any, pages.PageLog]
) -> None:
    """The whole page: login, `video` declared, H264 rects over the real websocket painted on
    the page's canvas, a lossless tile after them, a tile in the same update on top, the
    stream ended, hostile units answered with `keyframe`, a bad header closing with 1002."""
    page, log = page_and_log
    frames = panning(W, H, 11)
    units = encode(frames, colour=False)  # untagged, as the host's encoder writes it
    x0, y0 = 100, 80
    page.goto(scripted.url)
    page.fill("#password", "anything")
    page.click("#connect")
    _wait_active(page)
    assert scripted.wait_for("video")[-1] == {"t": "video", "codecs": "h264,hold"}
    for key, unit in units[:10]:
        scripted.send_update([(x0, y0, W, H, 5, video_payload(0, key, unit))])
    shown = np.asarray(_canvas_image(page))
    assert page.get_attribute("body", "data-video-rects") == "10"
    assert psnr(shown[y0:y0 + H, x0:x0 + W], frames[9]) >= MIN_PSNR_DB
    assert not shown[:y0].any()  # nothing outside the stream's rect
    # Motion stops: the host refreshes the region losslessly; the page is exact there.
    scripted.send_update([(x0, y0, W, H, 2, _png(frames[9]))], exact=True)
    shown = np.asarray(_canvas_image(page))
    assert (shown[y0:y0 + H, x0:x0 + W] == frames[9]).all()
    assert page.get_attribute("body", "data-exact") == "true"
    # One update: the next video frame, then a tile over part of it: the tile is on top.
    tile = np.full((64, 64, 3), (200, 30, 90), np.uint8)
    scripted.send_update([(x0, y0, W, H, 5, video_payload(0, False, units[10][1])),
                          (x0, y0, 64, 64, 2, _png(tile))])
    shown = np.asarray(_canvas_image(page))
    assert (shown[y0:y0 + 64, x0:x0 + 64] == tile).all()
    assert psnr(shown[y0 + 64:y0 + H, x0:x0 + W], frames[10][64:]) >= MIN_PSNR_DB
    assert page.get_attribute("body", "data-exact") == "false"
    # The stream ends; a unit for it after that is dropped and a key unit asked for.
    scripted.send_control({"t": "video_end", "stream": 0})
    scripted.send_update([(x0, y0, W, H, 5, video_payload(0, False, units[10][1]))])
    assert scripted.wait_for("keyframe")[-1] == {"t": "keyframe", "stream": 0}
    # A key unit declaring 50000x50000 on stream 1: refused, the connection stays.
    from tests.protocol.test_h264 import build_sps, key_unit

    forged = key_unit(build_sps(width_mbs=3125, height_units=3125, crop=None))
    scripted.send_update([(0, 0, W, H, 5, video_payload(1, True, forged))])
    assert [m["stream"] for m in scripted.wait_for("keyframe", 2)] == [0, 1]
    assert page.get_attribute("body", "data-state") == "active"
    # A malformed video header (reserved bits) is a protocol error: close 1002.
    scripted.send_update([(0, 0, W, H, 5, b"\0\1\0\1" + units[0][1])], ack=False)
    assert [m["code"] for m in scripted.wait_for("close")] == [1002]
    assert not log.errors()


def test_the_page_reports_its_hold_time_once_the_host_asks(
    scripted: ScriptedHost, page_and_log: tuple[Any, pages.PageLog]
) -> None:
    """The page offers ``hold`` in its ``video``; its acks carry no ``hold_us`` until the host
    sends ``ack_hold`` (a host of before the field refuses the member), then every ack does:
    an integer number of microseconds within the protocol's bound."""
    page, log = page_and_log
    page.goto(scripted.url)
    page.fill("#password", "anything")
    page.click("#connect")
    _wait_active(page)
    assert "hold" in scripted.wait_for("video")[-1]["codecs"].split(",")
    tile = _png(np.full((64, 64, 3), 90, np.uint8))
    first = scripted.send_update([(0, 0, 64, 64, 2, tile)])
    assert [m for m in scripted.wait_for("ack") if m["seq"] == first] == [
        {"t": "ack", "seq": first}]
    scripted.send_control({"t": "ack_hold"})
    seqs = [scripted.send_update([(64 * i, 0, 64, 64, 2, tile)]) for i in range(1, 4)]
    acks = [m for m in scripted.wait_for("ack") if m["seq"] in seqs]
    assert [m["seq"] for m in acks] == seqs
    for ack in acks:
        assert set(ack) == {"t", "seq", "hold_us"}, ack
        hold = ack["hold_us"]
        assert isinstance(hold, int) and 0 <= hold <= 10_000_000, ack
    assert page.get_attribute("body", "data-state") == "active"
    assert not log.errors(), log.lines


def test_a_real_host_reads_the_pages_hold_times(xvfb: Xvfb, host: RunningHost, page: Any
                                                ) -> None:
    """Against the real host: it answers the page's ``hold`` with ``ack_hold``, and its link
    estimator receives the page's hold times (decode and paint) with the acks."""
    _login(page, host)
    _wait_active(page)
    wait_hold(host, xvfb.display)
