"""The screen canvas's direct paint: large dirty regions go into the window through MIT-SHM.

Tk's photo costs about 13 ms a 1080p update (docs/performance.md, "History: the desktop
viewer's paint"). On a local X11 display with MIT-SHM, :class:`DirectPaint` writes a dirty
region's pixels (B, G, R, pad) into a shared segment and has the server copy them into the
canvas's window (:mod:`rdesk.client.tk.xshm`), bypassing the photo.

The photo stays the canvas's image item, and Tk still redraws from it whenever *it* redraws
(an Expose, an item moved or changed, a scroll): so the photo must be right wherever Tk is
about to redraw. The screen keeps that promise (rdesk/client/tk/screen.py): it refreshes the
photo under every area Tk will redraw (exposed areas, the cursor sprite's and the texts'
boxes before and after they change) and pastes it whole before a layout moves it. After a
direct put over one of the canvas's items (sprite, overlay, status), the photo is refreshed
under the overlap, so Tk draws that item again on top (after the put: same X connection).

``RDESK_VIEWER_PAINT=photo`` turns the direct paint off (docs/viewer.md).
"""

from __future__ import annotations

import ctypes
import logging
import os
import tkinter
from typing import Any

from PIL import Image

from rdesk.client.pixels import Pixels
from rdesk.client.tk import paint, scaling
from rdesk.client.tk.viewport import Viewport
from rdesk.client.tk.xshm import BYTES_PER_PIXEL, ShmPainter, open_painter
from rdesk.common import yuv

__all__ = ["ENV", "DirectPaint", "open_direct", "visible_box"]

log = logging.getLogger(__name__)

#: The environment variable choosing the paint path: ``photo`` forces Tk's photo (the
#: fallback); anything else (or unset) uses the direct paint when it can work.
ENV = "RDESK_VIEWER_PAINT"

Box = tuple[int, int, int, int]


def visible_box(viewport: Viewport) -> Box:
    """The drawn-image pixels ``(x0, y0, x1, y1)`` that lie inside the window."""
    dw, dh = viewport.display_size
    ox, oy = viewport.origin
    return (max(0, -ox), max(0, -oy), min(dw, viewport.win_w - ox), min(dh, viewport.win_h - oy))


def clip(a: Box, b: Box) -> Box | None:
    """The intersection of boxes ``a`` and ``b``, or ``None`` when empty."""
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _swap() -> Any | None:
    """libyuv's ``ABGRToARGB`` (R, G, B, A to B, G, R, A with strides), or ``None``."""
    lib = yuv.library()
    convert = getattr(lib, "ABGRToARGB", None) if lib is not None else None
    if convert is not None:
        pointer, integer = ctypes.c_void_p, ctypes.c_int
        convert.argtypes = [pointer, integer, pointer, integer, integer, integer]
        convert.restype = integer
    return convert


class DirectPaint:
    """Puts display boxes of the host's image into the canvas's window; Tk thread only."""

    def __init__(self, painter: ShmPainter) -> None:
        self.painter = painter
        self._swap = _swap()

    def put(self, image: Image.Image, pixels: Pixels | None, viewport: Viewport,
            boxes: list[Box]) -> list[Box]:
        """Put drawn-image ``boxes`` (clipped to the window) into the window; the window
        boxes ``(x0, y0, x1, y1)`` written. Raises ``OSError`` if the server refused."""
        visible = visible_box(viewport)
        vw, vh = visible[2] - visible[0], visible[3] - visible[1]
        if vw <= 0 or vh <= 0:
            return []
        self.painter.ensure(vw * vh * BYTES_PER_PIXEL)
        ox, oy = viewport.origin
        direct = (pixels is not None and self._swap is not None and not viewport.scaled
                  and (pixels.width, pixels.height) == image.size)
        # Scaled: libyuv scales straight into the segment, then swaps R and B there.
        scaled = self._swap is not None and scaling.usable(image, pixels, viewport)
        written = []
        for box in boxes:
            part = clip(box, visible)
            if part is None:
                continue
            x0, y0, x1, y1 = part
            w, h = x1 - x0, y1 - y0
            address = self.painter.region(w, h)
            if direct:
                assert pixels is not None and self._swap is not None
                # 1:1: drawn pixels are host pixels; offset() refuses any box outside them.
                self._swap(pixels.offset(x0, y0, w, h), pixels.stride, address,
                           w * BYTES_PER_PIXEL, w, h)
            elif scaled:
                assert pixels is not None and self._swap is not None
                row = w * BYTES_PER_PIXEL
                scaling.scale_into(pixels, viewport, part, address, row)
                self._swap(address, row, address, row, w, h)  # per pixel: in place is safe
            else:
                data = paint.render(image, viewport, part).tobytes("raw", "BGRX")
                ctypes.memmove(address, data, w * h * BYTES_PER_PIXEL)
            self.painter.put(w, h, x0 + ox, y0 + oy)
            written.append((x0 + ox, y0 + oy, x1 + ox, y1 + oy))
        self.painter.sync()
        return written

    def close(self) -> None:
        self.painter.close()


def open_direct(canvas: tkinter.Canvas, viewport: Viewport) -> DirectPaint | None:
    """The direct paint for ``canvas``, or ``None`` (logged in one line) when it is turned
    off or cannot work here: the photo is then the only path."""
    if os.environ.get(ENV, "").strip().lower() == "photo":
        log.info("viewer paint: Tk photo (%s=photo)", ENV)
        return None
    x0, y0, x1, y1 = visible_box(viewport)
    painter, why = open_painter(canvas, max(1, (x1 - x0) * (y1 - y0)) * BYTES_PER_PIXEL)
    if painter is None:
        log.info("viewer paint: Tk photo (no MIT-SHM: %s)", why)
        return None
    log.info("viewer paint: MIT-SHM into the window")
    return DirectPaint(painter)
