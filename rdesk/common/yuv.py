"""libyuv's colour conversions through ctypes, for the host's encoder and the viewer's decoder.

libyuv (Debian's ``libyuv0``) converts between packed RGB and 4:2:0 planes with SIMD rows, at
BT.601 limited range: the protocol's colour rule for video (docs/protocol.md, "Video"). It is
optional everywhere: :func:`function` answers ``None`` when the library or the function is
missing, and each caller then takes its slower path (swscale through PyAV).

The two functions rdesk uses, in libyuv's names ("ARGB" is a little-endian word, so B, G, R, A
in memory; "ABGR" is R, G, B, A in memory):

- ``ARGBToI420(src, src_stride, y, y_stride, u, u_stride, v, v_stride, width, height)``: the
  host's captured BGRA frame to the encoder's planes;
- ``I420ToABGR(y, y_stride, u, u_stride, v, v_stride, dst, dst_stride, width, height)``: the
  viewer's decoded planes to R, G, B, A pixels (a Pillow ``RGBA`` buffer).

Both return 0 on success. Nothing here holds a pointer beyond a call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

__all__ = ["CONVERSIONS", "function", "library"]

#: The functions rdesk may ask for, all of one signature: three planes and one packed buffer
#: (each a pointer and a stride, in the order of the function's name), then width and height.
CONVERSIONS = ("ARGBToI420", "I420ToABGR")


@functools.cache
def library() -> ctypes.CDLL | None:
    """libyuv, or ``None`` when it is not installed."""
    name = ctypes.util.find_library("yuv") or "libyuv.so.0"
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@functools.cache
def function(name: str) -> Any | None:
    """libyuv's ``name`` (one of :data:`CONVERSIONS`) with its argument types, or ``None``
    when libyuv or that function is missing. ctypes releases the GIL for the call."""
    if name not in CONVERSIONS:
        raise ValueError(f"{name} is not one of {CONVERSIONS}")
    lib = library()
    if lib is None:
        return None
    try:
        convert = getattr(lib, name)
    except AttributeError:
        return None
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    convert.argtypes = [pointer, integer] * 4 + [integer, integer]
    convert.restype = integer
    return convert
