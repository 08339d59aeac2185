"""The viewer's decoded pictures as Pillow images: libyuv's ``I420ToABGR`` against PyAV's
``to_image`` (swscale), which pictures take which path, the path without libyuv, and the
framebuffer painting what either gives."""

from __future__ import annotations

import fractions
from typing import Any

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV is not installed")

import av

from rdesk.client.framebuffer import Framebuffer
from rdesk.client.video import VideoDecoders
from rdesk.common import yuv
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.updates import Rect, Update
from rdesk.protocol.video import pack_header

needs_libyuv = pytest.mark.skipif(yuv.function("I420ToABGR") is None,
                                  reason="libyuv is not installed (Debian: libyuv0)")


def picture(w: int, h: int, seed: int, colorspace: int = 6, color_range: int = 1) -> Any:
    """A 4:2:0 picture of random limited-range samples (saturated colours clip in both
    conversions alike), marked with ``colorspace`` and ``color_range``."""
    rng = np.random.default_rng(seed)
    frame = av.VideoFrame(w, h, "yuv420p")
    sizes = [(w, h), ((w + 1) // 2, (h + 1) // 2), ((w + 1) // 2, (h + 1) // 2)]
    for plane, (pw, ph), (lo, hi) in zip(frame.planes, sizes, [(16, 236), (16, 241), (16, 241)],
                                         strict=True):
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        rows[:ph, :pw] = rng.integers(lo, hi, (ph, pw), dtype=np.uint8)
    frame.colorspace, frame.color_range = colorspace, color_range
    return frame


def rgb(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


@needs_libyuv
@pytest.mark.parametrize("size", [(96, 64), (1920, 1080), (33, 18)])
def test_libyuv_matches_swscale_within_rounding(size: tuple[int, int]) -> None:
    frame = picture(*size, seed=size[0])
    decoders = VideoDecoders()
    assert decoders.uses_libyuv
    got = decoders.image(frame)
    assert got.mode == "RGBA" and got.size == size
    want = frame.to_image()
    assert want.mode == "RGB"
    diff = np.abs(rgb(got) - rgb(want))
    # Both are BT.601 limited range with each chroma sample over its 2x2 block; they differ
    # only in fixed-point rounding.
    assert diff.max() <= 4, diff.max()
    assert diff.mean() < 1.5, diff.mean()
    assert (np.asarray(got)[..., 3] == 255).all()


@needs_libyuv
def test_an_odd_height_converts_whole() -> None:
    """The host sends even sizes only; another's odd ones still convert, every row (swscale
    filters the chroma of odd heights, so they agree only where the chroma is flat)."""
    frame = picture(33, 17, seed=6)
    for plane in frame.planes[1:]:
        np.frombuffer(memoryview(plane), np.uint8)[:] = 100
    got = VideoDecoders().image(frame)
    assert got.size == (33, 17)
    assert np.abs(rgb(got) - rgb(frame.to_image())).max() <= 4


@needs_libyuv
def test_the_buffer_is_reused_and_follows_the_size() -> None:
    decoders = VideoDecoders()
    first = decoders.image(picture(64, 32, seed=1))
    kept = np.asarray(first).copy()
    second = decoders.image(picture(64, 32, seed=2))
    # One buffer: the first image now shows the second picture (the framebuffer pastes each
    # picture before the next decode).
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert not np.array_equal(kept, np.asarray(second))
    third = decoders.image(picture(32, 16, seed=3))
    assert third.size == (32, 16)
    assert np.abs(rgb(third) - rgb(picture(32, 16, seed=3).to_image())).max() <= 4


@pytest.mark.parametrize(("colorspace", "color_range"), [(1, 1), (6, 2), (9, 1)])
def test_other_colours_go_through_swscale(colorspace: int, color_range: int) -> None:
    """BT.709, full range, BT.2020: not the protocol's colours, so not libyuv's BT.601
    conversion; PyAV's own conversion reads the picture's marks."""
    frame = picture(64, 32, seed=4, colorspace=colorspace, color_range=color_range)
    got = VideoDecoders().image(frame)
    assert got.mode == "RGB"
    assert got.tobytes() == frame.to_image().tobytes()


def test_without_libyuv_pictures_go_through_swscale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yuv, "function", lambda name: None)
    decoders = VideoDecoders()
    assert not decoders.uses_libyuv
    frame = picture(64, 32, seed=5)
    assert decoders.image(frame).tobytes() == frame.to_image().tobytes()
    assert not VideoDecoders(use_libyuv=False).uses_libyuv


def stream(w: int, h: int, count: int) -> tuple[list[np.ndarray], list[tuple[bytes, bool]]]:
    """``count`` RGB frames of a moving gradient with noise, and their H.264 units (libx264
    through PyAV, BT.601 limited range as the host encodes)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:h, 0:w]
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = w, h, "yuv420p"
    encoder.color_range = 1  # limited (libavcodec refuses x264's own "range" option)
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.bit_rate = 4_000_000
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                       "x264-params": "colormatrix=smpte170m"}
    frames, units = [], []
    for i in range(count):
        pixels = np.stack([(xx * 3 + i * 9) % 256, (yy * 2 + i * 5) % 256,
                           (xx + yy + i * 13) % 256], axis=-1)
        pixels = np.clip(pixels + rng.integers(-8, 9, pixels.shape), 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(
            format="yuv420p", src_colorspace="ITU601", dst_colorspace="ITU601",
            dst_color_range="MPEG")
        frame.pts = i
        packets = encoder.encode(frame)
        units.append((b"".join(bytes(p) for p in packets), any(p.is_keyframe for p in packets)))
        frames.append(pixels)
    return frames, units


@pytest.mark.parametrize("use_libyuv", [True, False])
def test_the_framebuffer_paints_decoded_frames(use_libyuv: bool) -> None:
    if use_libyuv and yuv.function("I420ToABGR") is None:
        pytest.skip("libyuv is not installed")
    w, h = 160, 96
    frames, units = stream(w, h, 6)
    assert units[0][1] and not any(key for _, key in units[1:])
    fb = Framebuffer(w + 32, h + 16, video=True)
    assert fb.video is not None
    fb.video = VideoDecoders(use_libyuv=use_libyuv)
    for i, (unit, key) in enumerate(units):
        rect = Rect(16, 8, w, h, Encoding.H264, pack_header(0, key) + unit)
        fb.apply(Update(i, 0, (rect,), exact=False))
    assert fb.image.mode == "RGB" and fb.video.decoded == len(units)
    shown = np.asarray(fb.image).astype(np.int16)
    # The rectangle holds the last frame as PyAV decodes it (exactly through swscale, within
    # rounding through libyuv), close to the frame encoded; the rest stays black.
    decoder = av.CodecContext.create("h264", "r")
    for unit, _ in units:
        last = decoder.decode(av.Packet(unit))[-1]
    reference = rgb(last.to_image())
    diff = np.abs(shown[8 : 8 + h, 16 : 16 + w] - reference)
    assert diff.max() <= (4 if use_libyuv else 0)
    mse = np.mean((reference - frames[-1].astype(np.int16)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 25
    assert not shown[:8].any() and not shown[:, :16].any()
