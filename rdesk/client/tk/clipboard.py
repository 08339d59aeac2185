"""The desktop window's clipboard sync: the host's text into the Tk clipboard, ours to the host.

The host's text arrives on the worker's thread (``conn.clipboard.on_text``) and is posted to
the window as a ``clipboard`` event; on the Tk thread :meth:`TkClipboard.host_text` puts it in
the local clipboard (Tk owns the X CLIPBOARD selection of the viewer's display). When the
window gains focus, the local clipboard's text, if it changed and the window sends input, goes
to the host (:func:`rdesk.client.clipboard.set_text`, on the worker's loop). A refusal (the
host's policy, a view-only login, the cap) is shown in the status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import tkinter
from collections.abc import Callable
from typing import Any

from rdesk.client.clipboard import ClipboardRefused, set_text
from rdesk.client.connection import Connection
from rdesk.client.errors import ConnectionLost

__all__ = ["TkClipboard"]


class TkClipboard:
    """``post(kind, *args)`` queues an event for the Tk thread (a refusal goes as a ``status``
    line); ``loop()`` is the worker's loop (or ``None``); ``may_send()`` says whether the
    window sends input."""

    def __init__(
        self,
        root: tkinter.Misc,
        post: Callable[..., None],
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        may_send: Callable[[], bool],
    ) -> None:
        self.root = root
        self.post = post
        self.loop = loop
        self.may_send = may_send
        self.conn: Connection | None = None
        #: The last text either way: never sent back where it came from.
        self.last: str | None = None

    def attach(self, conn: Connection) -> None:
        """A new connection (Tk thread): hear its host texts."""
        self.conn = conn
        conn.clipboard.on_text.append(
            lambda selection, text: self.post("clipboard", selection, text)
        )
        self.focus_in()  # what was copied while disconnected goes now

    def host_text(self, selection: str, text: str) -> None:
        """The host's ``selection`` changed (Tk thread): into the local clipboard."""
        if selection != "clipboard":
            return
        self.last = text
        self.root.clipboard_clear()
        self.root.clipboard_append(text)

    def focus_in(self) -> None:
        """The window gained focus (Tk thread): send the local text if it is new."""
        conn, loop = self.conn, self.loop()
        if conn is None or loop is None or conn.closed.done() or not self.may_send():
            return
        try:
            text = self.root.clipboard_get()
        except tkinter.TclError:
            return  # empty, or not text
        if not text or text == self.last:
            return
        self.last = text
        future = asyncio.run_coroutine_threadsafe(set_text(conn, text), loop)
        future.add_done_callback(self._sent)

    def _sent(self, future: Any) -> None:
        # On the worker's thread: tell the window through its queue.
        with contextlib.suppress(asyncio.CancelledError, ConnectionLost, TimeoutError):
            exc = future.exception()
            if isinstance(exc, ClipboardRefused):
                self.post("status", f"clipboard not sent: {exc}")
