"""Fit mode's scaling through libyuv: a display box of the scaled screen in about a tenth of
Pillow's time.

In fit mode every update is resized to the window. Pillow's box resize costs 11-20 ms for a
1080p update shown in 1280x720 (docs/performance.md, "Issue 16, tenth session: fit-to-window
paint through libyuv"); libyuv's ``ARGBScaleClip`` does the same bilinear scale with SIMD rows
in about 1.5 ms. It scales 4-byte pixels channel by channel, so it reads the framebuffer's
memory (:class:`~rdesk.client.pixels.Pixels`: R, G, B, pad) as it is and writes the same
layout.

``ARGBScaleClip`` computes only the clip rectangle of the whole scaled image, with the whole
image's sample positions: a display box scaled alone is exactly that box of a full-frame
scale, so partial updates leave no seams (tests/client/test_tk_fit_scaling.py checks it). It
writes the box at ``dst + y0 * stride + x0 * 4``, so :func:`scale_into` hands it the address
that far before the box's memory: only the box is written.

The bilinear filter is used, not libyuv's box filter: with a clip rectangle at a ratio that is
not an even integer the box filter was 5-7 levels off Pillow's box on average (bilinear: 2),
and at 1080p to 720p libyuv reduces box to bilinear anyway. A display pixel's bilinear taps lie
within one host pixel of its centre's sample; :func:`paint.plan` widens each dirty rectangle by
that much, so a repaint covers every display pixel the change reaches.

Optional: :func:`usable` says ``False`` when libyuv (or the framebuffer's mapped memory) is
missing, and the caller keeps Pillow's resize.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from PIL import Image

from rdesk.client.pixels import BYTES_PER_PIXEL, Pixels
from rdesk.client.tk.viewport import Viewport
from rdesk.common import yuv

__all__ = ["BILINEAR", "render", "scale_into", "scaler", "usable"]

#: libyuv's ``kFilterBilinear``.
BILINEAR = 2

Box = tuple[int, int, int, int]


@functools.cache
def scaler() -> Any | None:
    """libyuv's ``ARGBScaleClip`` with its argument types, or ``None`` when it is missing."""
    lib = yuv.library()
    scale = getattr(lib, "ARGBScaleClip", None) if lib is not None else None
    if scale is not None:
        pointer, integer = ctypes.c_void_p, ctypes.c_int
        # src, src_stride, src_w, src_h, dst, dst_stride, dst_w, dst_h, clip x/y/w/h, filter
        scale.argtypes = [pointer, integer, integer, integer, pointer] + [integer] * 8
        scale.restype = integer
    return scale


def usable(image: Image.Image, pixels: Pixels | None, viewport: Viewport) -> bool:
    """Whether a scaled display box of ``image`` can come from libyuv: the viewport scales,
    ``pixels`` is the memory under ``image`` and libyuv has ``ARGBScaleClip``."""
    return (viewport.scaled and pixels is not None and scaler() is not None
            and (pixels.width, pixels.height) == image.size
            and (viewport.host_w, viewport.host_h) == image.size)


def scale_into(pixels: Pixels, viewport: Viewport, box: Box, address: int, stride: int) -> None:
    """Write display box ``(x0, y0, x1, y1)`` of the scaled screen, as R, G, B, pad rows of
    ``stride`` bytes, at ``address`` (which must hold ``(y1 - y0)`` such rows).

    Raises ``ValueError`` for a box outside the display or if libyuv refuses."""
    scale = scaler()
    if scale is None:
        raise ValueError("libyuv's ARGBScaleClip is missing")
    dw, dh = viewport.display_size
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= dw and 0 <= y0 < y1 <= dh):
        raise ValueError(f"box {box} is not within the display {dw}x{dh}")
    if (pixels.width, pixels.height) != (viewport.host_w, viewport.host_h):
        raise ValueError("the pixels are not the viewport's screen")
    # The whole scaled image's origin, as libyuv wants it: it writes only the clip box.
    base = address - y0 * stride - x0 * BYTES_PER_PIXEL
    failed = scale(pixels.address, pixels.stride, pixels.width, pixels.height, base, stride,
                   dw, dh, x0, y0, x1 - x0, y1 - y0, BILINEAR)
    if failed:
        raise ValueError(f"ARGBScaleClip failed ({failed})")


def render(pixels: Pixels, viewport: Viewport, box: Box) -> Image.Image:
    """Display box ``(x0, y0, x1, y1)`` of the scaled screen as an ``RGB`` image."""
    w, h = box[2] - box[0], box[3] - box[1]
    buffer = bytearray(w * h * BYTES_PER_PIXEL)
    view = (ctypes.c_char * len(buffer)).from_buffer(buffer)
    try:
        scale_into(pixels, viewport, box, ctypes.addressof(view), w * BYTES_PER_PIXEL)
    finally:
        del view  # the bytearray must not stay exported
    return Image.frombytes("RGB", (w, h), buffer, "raw", "RGBX")
