"""The host's real cursor, for viewers to draw locally: XFIXES cursor notify and GetCursorImage.

:class:`CursorWatcher` runs one python-xlib connection in a daemon thread. It asks XFIXES to
tell it whenever the displayed cursor changes, reads the new image (ARGB, premultiplied),
checks it (at most 256 pixels a side, hot spot inside), turns it into an RGBA PNG and hands
``(CursorShape, png)`` to ``on_cursor``, from its thread. A cursor is read and encoded once per
serial: the notify carries the serial, and one seen lately is handed on again from the
watcher's own memory (:data:`SEEN_CURSORS`, :data:`SEEN_BYTES`) without asking the X server
(cursors repeat: arrow, text beam, hand).

:class:`CursorHub` keeps the current cursor and the viewers' :class:`CursorLink`\\ s; each link
sends a viewer the full shape only the first time, and ``cursor_use`` after that
(:class:`~rdesk.protocol.cursor.SentCursors`), from its own task, so a cursor never delays an
update.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import select
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from rdesk.common.xthread import ConnectionThread
from rdesk.protocol.cursor import (
    MAX_CURSOR_PNG,
    MAX_CURSOR_SIDE,
    CursorShape,
    CursorUse,
    SentCursors,
    cursor_messages,
)

__all__ = ["CursorHub", "CursorLink", "CursorWatcher", "argb_to_rgba"]

log = logging.getLogger(__name__)

#: The watcher's memory of cursors read, by serial: at most this many, and this many PNG bytes
#: (more than the 32 a viewer keeps, ``protocol.cursor.CACHE_SIZE``: a read costs a GetCursorImage
#: and a PNG).
SEEN_CURSORS = 256
SEEN_BYTES = 2 << 20


def argb_to_rgba(pixels: list[int], width: int, height: int) -> bytes:
    """XFIXES's premultiplied ARGB words as straight RGBA bytes, row by row."""
    out = bytearray(4 * width * height)
    for i, word in enumerate(pixels[: width * height]):
        a = (word >> 24) & 0xFF
        r, g, b = (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF
        if 0 < a < 255:  # undo the premultiplication (rounded)
            r, g, b = ((c * 255 + a // 2) // a for c in (r, g, b))
            r, g, b = min(r, 255), min(g, 255), min(b, 255)
        out[4 * i : 4 * i + 4] = bytes((r, g, b, a))
    return bytes(out)


def _png(rgba: bytes, width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("RGBA", (width, height), rgba).save(buffer, "PNG")
    return buffer.getvalue()


class CursorWatcher(ConnectionThread):
    """Report ``display``'s cursor to ``on_cursor(shape, png)`` whenever it changes (and once
    at start). Raises ``RuntimeError`` (one line) without XFIXES. :meth:`close` stops it.

    A cursor that cannot be read (an X error: it went away between the notify and the read)
    is skipped, and the watcher goes on.
    """

    def __init__(self, display: str, on_cursor: Callable[[CursorShape, bytes], None]) -> None:
        from Xlib import display as xdisplay
        from Xlib.error import XError
        from Xlib.ext import xfixes

        self._conn = xdisplay.Display(display)
        if not self._conn.has_extension("XFIXES"):
            self._conn.close()
            raise RuntimeError("the X server has no XFIXES: no cursor shapes for viewers")
        self._conn.xfixes_query_version()
        self._notify = self._conn.query_extension("XFIXES").first_event + xfixes.XFixesCursorNotify
        self._conn.xfixes_select_cursor_input(
            self._conn.screen().root, xfixes.XFixesDisplayCursorNotifyMask
        )
        self._on_cursor = on_cursor
        self._x_error = XError
        #: What each serial read lately gave (``None``: not a cursor to send), newest last.
        self._seen: OrderedDict[int, tuple[CursorShape, bytes] | None] = OrderedDict()
        self._seen_bytes = 0
        #: GetCursorImage requests made (each serial's first sight; at start).
        self.reads = 0
        self._start_thread("x-cursor")

    def _run(self) -> None:
        fd = self._conn.fileno()
        try:
            self._show(None)
            while not self._stopping:
                serial: int | None = None
                changed = False
                while self._conn.pending_events():
                    event = self._conn.next_event()
                    if (event.type & 0x7F) == self._notify:
                        changed, serial = True, getattr(event, "cursor_serial", None)
                if changed:
                    self._show(serial)
                select.select([fd, self.wake_r], [], [], 1.0)
        except Exception as exc:  # the server went away: the host is stopping
            if not self._stopping:
                log.warning("cursor watcher stopped: %s", exc)

    def _show(self, serial: int | None) -> None:
        """Hand on the cursor with ``serial`` (the displayed one; ``None``: not known)."""
        if serial is not None and serial in self._seen:
            self._seen.move_to_end(serial)
            seen = self._seen[serial]
        else:
            try:
                serial, seen = self._read_cursor()
            except self._x_error as exc:
                log.info("cursor not read: %s", exc)
                return
            self._seen[serial] = seen
            self._seen_bytes += len(seen[1]) if seen is not None else 0
            while len(self._seen) > SEEN_CURSORS or self._seen_bytes > SEEN_BYTES:
                _, dropped = self._seen.popitem(last=False)
                self._seen_bytes -= len(dropped[1]) if dropped is not None else 0
        if seen is not None:
            self._on_cursor(*seen)

    def _read_cursor(self) -> tuple[int, tuple[CursorShape, bytes] | None]:
        """The displayed cursor's serial, and its shape and PNG if it is one to send."""
        self.reads += 1
        image: Any = self._conn.xfixes_get_cursor_image(self._conn.screen().root)
        width, height, serial = image.width, image.height, image.cursor_serial
        if not (0 < width <= MAX_CURSOR_SIDE and 0 < height <= MAX_CURSOR_SIDE):
            log.info("cursor %d is %dx%d: too big to send", serial, width, height)
            return serial, None
        if not (image.xhot < width and image.yhot < height):
            return serial, None  # a hot spot outside the image: not one a viewer could draw
        png = _png(argb_to_rgba(list(image.cursor_image), width, height), width, height)
        if len(png) > MAX_CURSOR_PNG:
            return serial, None
        shape = CursorShape(serial, width, height, image.xhot, image.yhot, len(png))
        return serial, (shape, png)


class CursorHub:
    """The host's current cursor and the viewers that draw it."""

    def __init__(self) -> None:
        self.current: tuple[CursorShape, bytes] | None = None
        self._links: set[CursorLink] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.watcher: CursorWatcher | None = None

    def start(self, display: str) -> CursorHub:
        """Watch ``display`` (on the running loop); without XFIXES, say so and send nothing."""
        self._loop = asyncio.get_running_loop()
        try:
            self.watcher = CursorWatcher(display, self._from_thread)
        except Exception as exc:  # no XFIXES, or no display: viewers keep their own cursor
            log.warning("no cursor shapes for viewers: %s", exc)
        return self

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None

    def _from_thread(self, shape: CursorShape, png: bytes) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: stopping
                self._loop.call_soon_threadsafe(self.changed, shape, png)

    def changed(self, shape: CursorShape, png: bytes) -> None:
        """The host shows this cursor now (on the loop)."""
        self.current = (shape, png)
        for link in list(self._links):
            link.show(shape, png)

    def join(self, link: CursorLink) -> None:
        self._links.add(link)
        if self.current is not None:
            link.show(*self.current)

    def leave(self, link: CursorLink) -> None:
        self._links.discard(link)


class CursorLink:
    """One viewer's cursor stream: the latest cursor only, sent by one task."""

    def __init__(self, hub: CursorHub | None, send: Callable[[object], Awaitable[None]]) -> None:
        self.hub = hub
        self._send = send
        self._sent = SentCursors()
        self._pending: tuple[CursorShape, bytes] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def open(self) -> None:
        if self.hub is None:
            return
        self._task = asyncio.create_task(self._sender(), name="cursor")
        self.hub.join(self)

    async def close(self) -> None:
        if self.hub is not None:
            self.hub.leave(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def show(self, shape: CursorShape, png: bytes) -> None:
        self._pending = (shape, png)  # an older one not yet sent is no longer wanted
        self._wake.set()

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, None
            if pending is None:
                continue
            shape, png = pending
            if self._sent.holds(shape.serial):
                await self._send(CursorUse(shape.serial))
                continue
            for message in cursor_messages(shape, png):
                await self._send(message)
            self._sent.sent(shape.serial)
