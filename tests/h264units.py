"""Real H.264 access units for the browser's decoding tests, made with PyAV's libx264.

:func:`encode` turns RGB frames into the access units the wire carries (Annex B, one frame
each, SPS+PPS in front of every IDR, no B-frames), as a host's encoder would;
:func:`panning` makes photo-like frames panning across a picture (benchmarks/photo.py), which
no encoder codes trivially. :func:`video_payload` puts the 4-byte video header in front.
"""

from __future__ import annotations

import fractions
from typing import Any

import numpy as np

from benchmarks.photo import pan_offset, photo

#: The colour description written in the SPS's VUI: BT.601 limited range, what swscale's
#: rgb24 → yuv420p conversion produces. Without it a decoder guesses, and Chromium's canvas
#: paths guess differently (measured: a page canvas 27 dB against an OffscreenCanvas's 33 dB).
COLOUR = "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m"
#: ... and its range, set on the codec context (libavcodec refuses x264's ``range`` option).
LIMITED_RANGE = 1


def encode(frames: list[np.ndarray], *, profile: str = "baseline", preset: str = "ultrafast",
           keyint: int = 250, colour: bool = True) -> list[tuple[bool, bytes]]:
    """``(key, access unit)`` per frame (H×W×3 uint8, even sides), zerolatency, with the
    :data:`COLOUR` description unless ``colour`` is false. (x264 writes the lowest profile its
    tools need: Main takes a preset slower than ultrafast, which uses CABAC.)"""
    import av

    height, width = frames[0].shape[:2]
    ctx: Any = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    if colour:
        ctx.color_range = LIMITED_RANGE
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.options = {"preset": preset, "tune": "zerolatency", "profile": profile,
                   "x264-params": f"keyint={keyint}:repeat-headers=1:bframes=0"
                   + (":" + COLOUR if colour else "")}
    ctx.open()
    units: list[tuple[bool, bytes]] = []
    for n, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = n
        packets = ctx.encode(frame)
        units.append((any(p.is_keyframe for p in packets), b"".join(bytes(p) for p in packets)))
    assert all(unit for _, unit in units), "zerolatency emits one unit per frame"
    return units


def panning(width: int, height: int, count: int, step: int = 6) -> list[np.ndarray]:
    """``count`` frames of a photo-like picture panned ``step`` pixels a frame."""
    span = width + step * count
    picture = photo(span, height, seed=16)
    return [picture[:, x:x + width] for x in (pan_offset(n, step, span - width)
                                              for n in range(count))]


def video_payload(stream: int, key: bool, unit: bytes) -> bytes:
    """An H264 rectangle's payload: the video header, then the access unit."""
    return bytes([stream, 1 if key else 0, 0, 0]) + unit


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two RGB pictures, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)
