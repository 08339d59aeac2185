"""The host's cursor drawn in the desktop window: a sprite on the canvas at the local pointer.

Once the host has sent its cursor (``conn.cursor``: shape and PNG), the canvas hides the local
pointer (Tk's ``none`` cursor) and draws the host's image with its hot spot under the pointer,
so pointing feels local even on a slow link; before that, and outside the canvas, the local
``crosshair`` stays. The sprite is drawn at the host's pixel size (not scaled with the view).
"""

from __future__ import annotations

import base64
import tkinter
from collections.abc import Callable

from rdesk.protocol.cursor import CursorShape

__all__ = ["CursorSprite"]


class CursorSprite:
    """The sprite on ``canvas``; :meth:`show` each tick with the connection's cursor,
    :meth:`moved` with every pointer motion (canvas coordinates)."""

    def __init__(self, canvas: tkinter.Canvas) -> None:
        self.canvas = canvas
        self.item = canvas.create_image(0, 0, anchor="nw", state="hidden")
        self.shape: CursorShape | None = None
        self.photo: tkinter.PhotoImage | None = None
        self.at = (0, 0)
        #: Called with the sprite's item before and after it moves or changes (the screen
        #: keeps its photo right where Tk redraws: rdesk/client/tk/direct.py).
        self.redraw: Callable[[int], None] = lambda _item: None

    def show(self, cursor: tuple[CursorShape, bytes] | None) -> None:
        """Draw ``cursor`` (``None``: the local pointer again) if it is not the one shown."""
        if cursor is None:
            if self.shape is not None:
                self.shape, self.photo = None, None
                self.redraw(self.item)
                self.canvas.itemconfigure(self.item, state="hidden")
                self.canvas.configure(cursor="crosshair")
            return
        shape, png = cursor
        if shape == self.shape:
            return
        try:
            photo = tkinter.PhotoImage(master=self.canvas, data=base64.b64encode(png).decode())
        except tkinter.TclError:
            return  # not a PNG this Tk can read: keep the local pointer
        self.shape, self.photo = shape, photo
        self.redraw(self.item)
        self.canvas.itemconfigure(self.item, image=photo)
        self.canvas.configure(cursor="none")
        self._place()

    def moved(self, x: int, y: int) -> None:
        """The local pointer is at canvas pixel (x, y)."""
        self.at = (x, y)
        self._place()

    def left(self) -> None:
        """The pointer left the canvas."""
        self.redraw(self.item)
        self.canvas.itemconfigure(self.item, state="hidden")

    def _place(self) -> None:
        if self.shape is None:
            return
        x = self.canvas.canvasx(self.at[0]) - self.shape.xhot
        y = self.canvas.canvasy(self.at[1]) - self.shape.yhot
        self.redraw(self.item)
        self.canvas.coords(self.item, x, y)
        self.canvas.itemconfigure(self.item, state="normal")
        self.canvas.tag_raise(self.item)
        self.redraw(self.item)
