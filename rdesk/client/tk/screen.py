"""What the viewer window draws: the host's screen in one photo, the status line, the
statistics overlay and the scrollbars, all on one canvas.

:class:`Screen` owns the canvas and the :class:`~rdesk.client.tk.viewport.Viewport` (where
the screen sits and at what scale); the window tells it what to show. Painting is driven by
the window's Tk tick: :meth:`Screen.paint` draws what the :attr:`Screen.damage` recorded
(see :mod:`rdesk.client.tk.paint`). Large regions go straight into the window through
MIT-SHM when the display allows it (:mod:`rdesk.client.tk.direct`, which says what the photo
must then be kept right for); otherwise, or with ``RDESK_VIEWER_PAINT=photo``, into the photo.
"""

from __future__ import annotations

import logging
import tkinter
from typing import Any

from PIL import Image, ImageTk

from rdesk.client.pixels import Pixels
from rdesk.client.tk import paint
from rdesk.client.tk.direct import DirectPaint, clip, open_direct
from rdesk.client.tk.viewport import ONE_TO_ONE, Mode, Viewport

__all__ = ["Screen"]

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]


class Screen:
    """The canvas in ``root``'s grid cell (0, 0), with scrollbars beside it when needed."""

    def __init__(self, root: tkinter.Tk, mode: Mode) -> None:
        self.root = root
        self.canvas = tkinter.Canvas(
            root, width=640, height=400, background="black", highlightthickness=0, bd=0,
            cursor="crosshair", takefocus=1,
        )
        self.canvas.grid(row=0, column=0, sticky="nsew")
        self.hbar = tkinter.Scrollbar(root, orient="horizontal",
                                      command=lambda *a: self.on_scroll("x", *a))
        self.vbar = tkinter.Scrollbar(root, orient="vertical",
                                      command=lambda *a: self.on_scroll("y", *a))
        self.viewport = Viewport(1, 1, 640, 400, mode)
        #: The photo the screen is painted into; ``None`` until the first paint (and after a
        #: size change, when the next paint makes one of the new size).
        self.photo: ImageTk.PhotoImage | None = None
        #: What changed since the last paint (fed from the network thread).
        self.damage = paint.Damage()
        #: Paints done (the overlay's frame rate).
        self.paints = 0
        #: The direct paint, once opened (``None``: the photo only; see :meth:`paint`).
        self.direct: DirectPaint | None = None
        self._direct_tried = False
        #: Whether the window shows pixels the photo lacks (a direct put since the last
        #: whole paste), and whether the photo must be pasted whole at the next paint.
        self._stale = False
        self._paste_due = False
        self._image: Image.Image | None = None
        self._pixels: Pixels | None = None
        #: What Tk will redraw from the photo at its next redisplay, as far as we caused it:
        #: the canvas redraws the bounding box of all its damage, so the photo must be right
        #: over that whole box, not only over each area.
        self._tk_area: Box | None = None
        #: Canvas items drawn above the screen (the window adds the cursor sprite's).
        self.items_above: list[int] = []
        self.image_item = self.canvas.create_image(0, 0, anchor="nw")
        self.status_item = self.canvas.create_text(
            320, 200, text="", fill="#dddddd", font=("TkDefaultFont", 14), justify="center"
        )
        self.overlay_box = self.canvas.create_rectangle(
            6, 6, 6, 6, fill="#000000", outline="#808080", state="hidden"
        )
        self.overlay_item = self.canvas.create_text(
            12, 10, anchor="nw", text="", fill="#80ff80", font=("TkFixedFont", 10),
            state="hidden",
        )
        self.items_above += [self.status_item, self.overlay_box, self.overlay_item]
        self.canvas.bind("<Configure>", self.on_configure)
        self.canvas.bind("<Expose>", self.on_expose, add="+")
        self.canvas.bind("<Destroy>", lambda _e: self.close_direct(), add="+")
        root.bind(
            "<Configure>", lambda e: self.place_scrollbars() if e.widget is root else None
        )

    # --- painting --------------------------------------------------------------------------------

    def paint(self, image: Image.Image, pixels: Pixels | None = None) -> None:
        """Paint what changed of the host's screen ``image`` (everything after a change of
        screen size, window size or scale); ``pixels``, the framebuffer's memory under it,
        lets a 1:1 direct put read it without a copy."""
        if self._stale:
            self.canvas.update_idletasks()  # Tk's pending redraws (from the photo) go first
            self._tk_area = None
        rects, everything = self.damage.take()
        whole = False
        if image.size != (self.viewport.host_w, self.viewport.host_h):
            self.viewport = self.viewport.with_host(*image.size)
            everything = True
        display = self.viewport.display_size
        if self.photo is None or (self.photo.width(), self.photo.height()) != display:
            self.layout()
            display = self.viewport.display_size
            self.photo = ImageTk.PhotoImage("RGB", display)
            self.canvas.itemconfigure(self.image_item, image=self.photo)
            whole = True
        whole, self._paste_due = whole or self._paste_due, False  # (layout() may set it)
        if not rects and not everything and not whole:
            return
        self._image, self._pixels = image, pixels
        if not self._direct_tried:
            self._direct_tried = True
            self.direct = open_direct(self.canvas, self.viewport)
        boxes = None if everything or whole else paint.plan(self.viewport, rects)
        if whole or self.direct is None:
            self._paint_photo(image, pixels, boxes)
        else:
            self._paint_direct(image, pixels, boxes or [(0, 0, *display)])
        self.paints += 1

    def _paint_photo(self, image: Image.Image, pixels: Pixels | None,
                     boxes: list[Box] | None) -> None:
        assert self.photo is not None
        if boxes is None:
            whole = (0, 0, *self.viewport.display_size)
            self.photo.paste(paint.render(image, self.viewport, whole, pixels))
            self._stale = False
            return
        for box in boxes:
            region = paint.render(image, self.viewport, box, pixels)
            paint.blit(self.root.tk, self.photo, region, box[0], box[1])

    def _paint_direct(self, image: Image.Image, pixels: Pixels | None, boxes: list[Box]) -> None:
        assert self.direct is not None
        # Small boxes too: a photo put would make Tk redraw the bounding box of every one of
        # them (and of the items above), over direct pixels the photo lacks.
        try:
            written = self.direct.put(image, pixels, self.viewport, boxes)
        except (OSError, ValueError) as exc:
            log.warning("viewer paint: MIT-SHM failed (%s); Tk photo from now on", exc)
            self.direct.close()
            self.direct = None
            self._paint_photo(image, pixels, None)
            return
        if written:
            self._stale = True
            self._redraw_above(written)

    def _redraw_above(self, written: list[Box]) -> None:
        """Have Tk draw again the items above the screen that direct puts covered."""
        for item in self.items_above:
            if self.canvas.itemcget(item, "state") == "hidden":
                continue
            bbox = self.canvas.bbox(item)
            if bbox:
                for box in written:
                    part = clip(tuple(bbox), box)  # type: ignore[arg-type]
                    if part is not None:
                        self.freshen(part)

    def freshen(self, box: Box | None) -> None:
        """Make the photo right under window box ``(x0, y0, x1, y1)``, which Tk is about to
        redraw from it, and under the rest of what Tk will redraw with it (nothing to do
        while no direct put made the photo stale)."""
        if not self._stale or box is None or self.photo is None or self._image is None:
            return
        if self._image.size != (self.viewport.host_w, self.viewport.host_h):
            return  # a new screen size: the next paint pastes everything
        if self._tk_area is not None:
            a = self._tk_area
            box = (min(a[0], box[0]), min(a[1], box[1]), max(a[2], box[2]), max(a[3], box[3]))
        self._tk_area = box
        ox, oy = self.viewport.origin
        part = clip((box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy),
                    (0, 0, *self.viewport.display_size))
        if part is not None:
            region = paint.render(self._image, self.viewport, part, self._pixels)
            paint.blit(self.root.tk, self.photo, region, part[0], part[1])

    def freshen_item(self, item: int) -> None:
        """:meth:`freshen` under canvas ``item``'s box (before and after it changes)."""
        if self._stale:
            bbox = self.canvas.bbox(item)
            self.freshen(tuple(bbox) if bbox else None)  # type: ignore[arg-type]

    def close_direct(self) -> None:
        """Give the shared segment back (the canvas is going)."""
        if self.direct is not None:
            self.direct.close()
            self.direct = None

    def on_expose(self, event: tkinter.Event[Any]) -> None:
        """Part of the window was uncovered: Tk redraws it from the photo at idle."""
        self.freshen((event.x, event.y, event.x + event.width, event.y + event.height))

    # --- layout --------------------------------------------------------------------------------

    def set_mode(self, mode: Mode) -> None:
        """Show the screen fitted or 1:1 from now on."""
        self.viewport = self.viewport.with_mode(mode)
        self.photo = None
        self.relayout()

    def layout(self) -> None:
        """Place the image, scrollbars and status after a size, mode or screen change."""
        win_w = max(1, self.canvas.winfo_width())
        win_h = max(1, self.canvas.winfo_height())
        self.viewport = self.viewport.resized(win_w, win_h)
        if self._stale:  # Tk redraws the moved image from the photo: paste it whole
            self._paste_due = True
            self.damage.everything()
        ox, oy = self.viewport.origin
        self.canvas.coords(self.image_item, ox, oy)
        self.canvas.coords(self.status_item, win_w // 2, win_h // 2)
        (fx0, fx1), (fy0, fy1) = self.viewport.scroll_fractions()
        self.hbar.set(fx0, fx1)
        self.vbar.set(fy0, fy1)
        self.place_scrollbars()

    def place_scrollbars(self) -> None:
        """Show the scrollbars 1:1 when the screen exceeds the window.

        Decided from the whole window's size, not the canvas's (which the bars shrink), so
        showing a bar can never make the decision flip back and forth.
        """
        vp = self.viewport
        need_x = need_y = False
        if vp.mode == ONE_TO_ONE and vp.host_w > 1:
            root_w, root_h = self.root.winfo_width(), self.root.winfo_height()
            bar_w, bar_h = self.vbar.winfo_reqwidth(), self.hbar.winfo_reqheight()
            need_x = vp.host_w > root_w
            need_y = vp.host_h > root_h - (bar_h if need_x else 0)
            need_x = vp.host_w > root_w - (bar_w if need_y else 0)
        if need_x != bool(self.hbar.grid_info()):
            if need_x:
                self.hbar.grid(row=1, column=0, sticky="ew")
            else:
                self.hbar.grid_remove()
        if need_y != bool(self.vbar.grid_info()):
            if need_y:
                self.vbar.grid(row=0, column=1, sticky="ns")
            else:
                self.vbar.grid_remove()

    def on_configure(self, event: tkinter.Event[Any]) -> None:
        """The canvas changed size."""
        if (event.width, event.height) == (self.viewport.win_w, self.viewport.win_h):
            return
        self.relayout()

    def relayout(self) -> None:
        """Lay out again and repaint everything (in a new photo if the display size changed)."""
        before = self.viewport.display_size
        self.layout()
        if self.viewport.display_size != before:
            self.photo = None  # the next tick makes one of the new size and paints it all
        self.damage.everything()

    def on_scroll(self, axis: str, *args: str) -> None:
        """A scrollbar moved: Tk's ``moveto FRACTION`` or ``scroll N units|pages``."""
        vp = self.viewport
        size = vp.host_w if axis == "x" else vp.host_h
        page = vp.win_w if axis == "x" else vp.win_h
        pos = vp.scroll_x if axis == "x" else vp.scroll_y
        if args[0] == "moveto":
            pos = round(float(args[1]) * size)
        elif args[0] == "scroll":
            pos += int(args[1]) * (page * 9 // 10 if args[2] == "pages" else 32)
        self.viewport = vp.scrolled(pos, vp.scroll_y) if axis == "x" else vp.scrolled(
            vp.scroll_x, pos
        )
        self.layout()

    # --- status and overlay --------------------------------------------------------------------

    def set_status(self, text: str) -> None:
        """Show ``text`` in the middle of the canvas, above the screen (``""``: nothing)."""
        self.freshen_item(self.status_item)
        self.canvas.itemconfigure(self.status_item, text=text)
        self.canvas.tag_raise(self.status_item)
        self.freshen_item(self.status_item)

    def show_overlay(self, on: bool) -> None:
        """Show or hide the statistics overlay."""
        state = "normal" if on else "hidden"
        self.freshen_item(self.overlay_box)
        self.canvas.itemconfigure(self.overlay_item, state=state)
        self.canvas.itemconfigure(self.overlay_box, state=state)

    def set_overlay(self, text: str) -> None:
        """Put ``text`` in the overlay, boxed, above everything."""
        self.freshen_item(self.overlay_box)
        self.canvas.itemconfigure(self.overlay_item, text=text)
        x0, y0, x1, y1 = self.canvas.bbox(self.overlay_item) or (6, 6, 6, 6)
        self.canvas.coords(self.overlay_box, x0 - 4, y0 - 3, x1 + 4, y1 + 3)
        self.canvas.tag_raise(self.overlay_box)
        self.canvas.tag_raise(self.overlay_item)
        self.freshen_item(self.overlay_box)
