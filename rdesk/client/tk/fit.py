"""The F8 menu's "Resize desktop to window": the host's virtual desktop follows the window.

While the option is on, each change of the canvas's size is sent as ``resize`` (debounced:
:data:`DEBOUNCE_MS` after the last change, so a drag sends one request, and the host
rate-limits again). A refusal (a real display, Xvfb, not in control) is shown in the status
line and turns the option off: the host will not do it on this connection.
"""

from __future__ import annotations

import asyncio
import tkinter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rdesk.protocol.resize import MAX_SIDE, MIN_SIDE, ResizeResult

if TYPE_CHECKING:
    from rdesk.client.connection import Connection

__all__ = ["DEBOUNCE_MS", "DesktopFit", "clamp"]

#: Milliseconds the window's size must stay put before it is sent.
DEBOUNCE_MS = 300


def clamp(width: int, height: int) -> tuple[int, int]:
    """The window's size within what a viewer may ask for."""
    return (min(max(width, MIN_SIDE), MAX_SIDE), min(max(height, MIN_SIDE), MAX_SIDE))


class DesktopFit:
    """Sends the canvas's size while :attr:`on` is set; ``conn()`` and ``loop()`` are the
    worker's, ``say(text)`` shows a refusal."""

    def __init__(
        self, canvas: tkinter.Canvas, on: bool, conn: Callable[[], Connection | None],
        loop: Callable[[], asyncio.AbstractEventLoop | None], say: Callable[[str], None],
    ) -> None:
        self.canvas = canvas
        self.on = tkinter.BooleanVar(canvas, on)
        self._conn, self._loop, self._say = conn, loop, say
        self._pending: str | None = None
        #: The last size sent (not sent again).
        self.sent: tuple[int, int] | None = None
        canvas.bind("<Configure>", lambda _e: self.changed(), add="+")

    def changed(self) -> None:
        """The window's size (or the option, or the connection) changed: send it soon."""
        if self._pending is not None:
            self.canvas.after_cancel(self._pending)
        self._pending = self.canvas.after(DEBOUNCE_MS, self._send)

    def toggled(self) -> None:
        """The menu switched the option: a new size is due when it is on."""
        self.sent = None
        if self.on.get():
            self.changed()

    def _send(self) -> None:
        self._pending = None
        conn, loop = self._conn(), self._loop()
        if not self.on.get() or conn is None or loop is None or conn.closed.done():
            return
        size = clamp(self.canvas.winfo_width(), self.canvas.winfo_height())
        if size == self.sent or size == conn.framebuffer.size:
            return
        self.sent = size
        future = asyncio.run_coroutine_threadsafe(conn.request_resize(*size), loop)
        future.add_done_callback(self._answered)

    def _answered(self, future: Any) -> None:
        # On the worker's thread: hand the outcome to Tk's.
        if future.cancelled() or future.exception() is not None:
            return
        result: ResizeResult = future.result()
        if not result.ok and "replaced" not in result.reason:
            self.canvas.after(0, self._refused, result.reason)

    def _refused(self, reason: str) -> None:
        self.on.set(False)
        self._say(f"resize refused: {reason}")
