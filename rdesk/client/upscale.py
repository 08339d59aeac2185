"""Tiles the host sent at half or a quarter of their size, scaled back into the framebuffer.

At a low level the host sends lossy tiles at 1/2 or 1/4 scale (``Image.reduce``: a box filter
over 2x2 or 4x4 pixels, rdesk/host/encoding/encode.py), and the viewer brings each back to its
rectangle with a bilinear filter. Pillow's ``resize`` and paste take 13-16 ms for one 1080p
picture on this project's test machine; a viewer paints one such picture per update at the
start of a pan (the host's start pictures are half scale) and on any large lossy change at a
low level, and that time counts in the ack's hold, which the host's window waits for.
:class:`Upscaler` does it in 1.2-2.5 ms, written straight into the framebuffer's memory
(rdesk/client/pixels.py): the tile's pixels split into three planes, each doubled by
libyuv's ``ScalePlane`` (twice for a quarter scale), the planes merged into the rectangle's
rows. An exact 2x is the one ratio ``ScalePlane`` filters centre-aligned (3:1 weights), as
Pillow does: a doubled tile's pixels differ from Pillow's by at most 1. Its other ratios map
the corners onto each other instead (a shift of up to a quarter of a pixel), so a quarter
scale is doubled twice: a softer filter than Pillow's 4x (0.5 dB below it on a clean
quarter-scale photograph), which on the JPEG the host sends at that scale (quality 30) came
within 0.1 dB of Pillow's either way, on three 1080p pictures (docs/performance.md).

It applies only to an exact 2x or 4x of a tile large enough to gain from it
(:data:`MIN_PIXELS`); everything else, and every viewer without libyuv or a mapped
framebuffer, takes Pillow's path. One thread at a time (the framebuffer's). ctypes and
Pillow only: this is the viewer library, which a viewer-only install runs without numpy.
"""

from __future__ import annotations

import ctypes
from typing import Any

from PIL import Image

from rdesk.client.pixels import Pixels
from rdesk.common import yuv

__all__ = ["FACTORS", "KEEP_BYTES", "MIN_PIXELS", "Upscaler"]

#: The ratios between a rectangle and its tile this path scales: the host's 1/2 and 1/4.
FACTORS = (2, 4)

#: Smallest rectangle (pixels) worth it: below this Pillow's resize takes tens of
#: microseconds, about what the seven library calls and their set-up cost.
MIN_PIXELS = 128 * 128
#: Most scratch kept between calls (bytes): a 4K screen's planes (about 33 MB); a larger
#: screen's are allocated for the call and let go, as Pillow's resized picture would be.
KEEP_BYTES = 40 * 1024 * 1024
#: libyuv's ``kFilterBilinear``.
_BILINEAR = 2


def _functions() -> dict[str, Any] | None:
    """libyuv's plane split, merge and scale with their argument types, or ``None``."""
    lib = yuv.library()
    if lib is None:
        return None
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    found: dict[str, Any] = {}
    for name, args in (
        # (src, stride, r, stride, g, stride, b, stride, a, stride, width, height)
        ("SplitARGBPlane", [pointer, integer] * 5 + [integer, integer]),
        # (r, stride, g, stride, b, stride, a, stride, dst, stride, width, height)
        ("MergeARGBPlane", [pointer, integer] * 5 + [integer, integer]),
        # (src, stride, width, height, dst, stride, width, height, filter)
        ("ScalePlane", [pointer, integer, integer, integer] * 2 + [integer]),
    ):
        function = getattr(lib, name, None)
        if function is None:
            return None
        function.argtypes = args
        function.restype = None  # void in older libyuv; nothing here can fail once checked
        found[name] = function
    return found


class Upscaler:
    """Paints a tile scaled by 2 or 4 into a box of :class:`Pixels`, or declines.

    Scratch planes are kept between calls, up to :data:`KEEP_BYTES` (a full screen's are at
    most four times the screen's pixels in bytes).
    """

    def __init__(self) -> None:
        self._lib = _functions()
        self._scratch = bytearray()
        self._view: Any = None  # the ctypes view of ``_scratch``, which pins its memory

    @property
    def available(self) -> bool:
        return self._lib is not None

    def paint(self, tile: Image.Image, pixels: Pixels | None,
              box: tuple[int, int, int, int]) -> bool:
        """Scale the ``RGB`` ``tile`` up to ``box`` (x, y, w, h) of ``pixels``; ``False``,
        having written nothing, when this path does not apply (the caller then resizes and
        pastes). Raises ``ValueError`` for a box outside ``pixels``."""
        x, y, w, h = box
        tw, th = tile.size
        lib = self._lib
        if lib is None or pixels is None or tile.mode != "RGB" or w * h < MIN_PIXELS:
            return False
        factor = w // tw
        if factor not in FACTORS or (w, h) != (tw * factor, th * factor):
            return False
        dst = pixels.offset(x, y, w, h)  # checked before anything is written
        # Read-only for libyuv: ctypes passes the bytes object's own buffer.
        source = tile.tobytes("raw", "RGBX")
        middle = 4 * tw * th if factor == 4 else 0  # a plane of the first doubling
        need = 3 * (tw * th + w * h + middle)
        view = self._view
        if len(self._scratch) < need:
            scratch = bytearray(need)
            view = (ctypes.c_char * need).from_buffer(scratch)
            if need <= KEEP_BYTES:
                self._scratch, self._view = scratch, view
        base = ctypes.addressof(view)
        small = [base + i * tw * th for i in range(3)]
        large = [base + 3 * tw * th + i * w * h for i in range(3)]
        lib["SplitARGBPlane"](source, tw * 4, small[0], tw, small[1], tw,
                              small[2], tw, None, 0, tw, th)
        if factor == 4:
            step = [base + 3 * (tw * th + w * h) + i * middle for i in range(3)]
            for plane in range(3):
                lib["ScalePlane"](small[plane], tw, tw, th, step[plane], 2 * tw, 2 * tw,
                                  2 * th, _BILINEAR)
            small, tw, th = step, 2 * tw, 2 * th
        for plane in range(3):
            lib["ScalePlane"](small[plane], tw, tw, th, large[plane], w, w, h, _BILINEAR)
        # The tile's R, G, B bytes are libyuv's "ARGB" bytes 0-2: split and merged alike, they
        # land where they were; the pad byte is written opaque, which Pillow ignores.
        lib["MergeARGBPlane"](large[0], w, large[1], w, large[2], w, None, 0, dst,
                              pixels.stride, w, h)
        return True
