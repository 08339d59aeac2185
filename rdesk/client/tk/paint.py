"""How the viewer window paints: which regions are dirty, and how each reaches the photo.

The connection's update callback runs on the network thread and only records what changed
(:class:`Damage`, under a lock); the window's Tk tick takes it and paints those regions of
the framebuffer into its one ``PhotoImage``. Strategy (measured, docs/performance.md): a
region this small goes through a PPM ``put``; a larger one is copied from a temporary photo;
when the dirty area exceeds :data:`FULL_SHARE` of the display, the whole image is pasted.

Scaled (fit mode), a region is resized by libyuv when the framebuffer's memory is mapped
(:mod:`rdesk.client.tk.scaling`), by Pillow's box resize otherwise; either way a region is
exactly that box of the whole scaled image, and every path (photo, direct, the photo's
refreshes) uses the same one, so what Tk redraws from the photo matches the direct pixels.
"""

from __future__ import annotations

import threading
from typing import Any

from PIL import Image, ImageTk

from rdesk.client.pixels import Pixels
from rdesk.client.tk import scaling
from rdesk.client.tk.viewport import Viewport

__all__ = [
    "FULL_SHARE", "MAX_RECTS", "PUT_MAX_AREA", "Damage", "blit", "plan", "reach", "render",
]

#: A region of at most this many pixels is painted with a PPM ``put``.
PUT_MAX_AREA = 16384
#: Above this share of the display, the whole image is pasted at once.
FULL_SHARE = 0.35
#: Past this many dirty rectangles, they merge into their bounding box.
MAX_RECTS = 48

Rect = tuple[int, int, int, int]


class Damage:
    """What changed since the last paint, in host pixels (thread-safe).

    ``add`` is called on the network thread, :meth:`take` on Tk's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rects: list[Rect] = []
        self._all = False

    def add(self, painted: list[Rect]) -> None:
        """Record painted rectangles ``(x, y, w, h)``; an empty list means everything."""
        with self._lock:
            if not painted:
                self._all = True
            elif not self._all:
                self._rects.extend(painted)
                if len(self._rects) > MAX_RECTS:
                    self._rects = [bounding_box(self._rects)]

    def everything(self) -> None:
        """Everything must be painted again (a new photo, a new connection)."""
        with self._lock:
            self._all = True

    def take(self) -> tuple[list[Rect], bool]:
        """The dirty rectangles and whether everything is dirty; both are reset."""
        with self._lock:
            rects, everything = self._rects, self._all
            self._rects, self._all = [], False
        return rects, everything


def bounding_box(rects: list[Rect]) -> Rect:
    """The smallest ``(x, y, w, h)`` covering every rectangle of ``rects`` (not empty)."""
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return x0, y0, x1 - x0, y1 - y0


def plan(viewport: Viewport, rects: list[Rect]) -> list[Rect] | None:
    """The display boxes ``(x0, y0, x1, y1)`` to paint for host ``rects``, or ``None`` when
    they cover so much of the display that pasting it whole is cheaper."""
    display = viewport.display_size
    boxes = [reach(viewport, r) for r in rects]
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
    return None if area > FULL_SHARE * display[0] * display[1] else boxes


def reach(viewport: Viewport, rect: Rect) -> Rect:
    """The display box ``(x0, y0, x1, y1)`` whose pixels host ``rect`` can change.

    1:1 that is the rect itself. Scaled, a display pixel is filtered from host pixels around
    the one under its centre: libyuv's bilinear taps lie within one host pixel of the centre's
    sample, Pillow's box within one display pixel. So the rect grows by one host pixel before
    it is mapped and the box by one display pixel after: a repaint then leaves no pixel at its
    edge showing the old content (a seam) where a whole-frame scale shows the new.
    """
    if not viewport.scaled:
        return viewport.host_rect_to_display(*rect)
    x, y, w, h = rect
    hx0, hy0 = max(0, x - 1), max(0, y - 1)
    hx1, hy1 = min(viewport.host_w, x + w + 1), min(viewport.host_h, y + h + 1)
    if w <= 0 or h <= 0 or hx1 <= hx0 or hy1 <= hy0:
        return 0, 0, 0, 0
    x0, y0, x1, y1 = viewport.host_rect_to_display(hx0, hy0, hx1 - hx0, hy1 - hy0)
    dw, dh = viewport.display_size
    return max(0, x0 - 1), max(0, y0 - 1), min(dw, x1 + 1), min(dh, y1 + 1)


def render(image: Image.Image, viewport: Viewport, box: Rect,
           pixels: Pixels | None = None) -> Image.Image:
    """Drawn pixels ``box`` (display coordinates ``x0, y0, x1, y1``) of the host image;
    ``pixels``, the memory under ``image``, lets libyuv do a scaled box."""
    x0, y0, x1, y1 = box
    if scaling.usable(image, pixels, viewport):
        assert pixels is not None
        return scaling.render(pixels, viewport, box)
    if not viewport.scaled:
        # The whole screen is pasted as it is: no copy (a torn read while the network
        # thread paints is repaired by the next tick: that rect is dirty again).
        return image if box == (0, 0, *image.size) else image.crop(box)
    return image.resize(
        (x1 - x0, y1 - y0), Image.Resampling.BOX,
        box=viewport.display_to_host_box(x0, y0, x1, y1),
    )


def blit(tk: Any, photo: ImageTk.PhotoImage, region: Image.Image, x: int, y: int) -> None:
    """Copy ``region`` into ``photo`` at ``(x, y)`` through the Tcl interpreter ``tk``."""
    w, h = region.size
    if w * h <= PUT_MAX_AREA:
        data = b"P6 %d %d 255 " % (w, h) + region.tobytes()
        tk.call(str(photo), "put", data, "-format", "ppm", "-to", x, y)
    else:
        tile = ImageTk.PhotoImage(region)
        tk.call(str(photo), "copy", str(tile), "-to", x, y)
