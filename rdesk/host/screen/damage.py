"""Change notification from the X DAMAGE extension, so a still screen costs almost nothing.

The capture loop waits for :meth:`DamageWatcher.fileno` to become readable (or a timeout), calls
:meth:`DamageWatcher.poll` (which drains and re-arms) before each grab; between grabs it only
asks :meth:`DamageWatcher.pending`, which reads nothing. When the capturer grabs through libxcb,
:class:`rdesk.host.screen.xcb.XcbDamage` does the same on its connection (:func:`watch_changes`
picks).

What DAMAGE does *not* report: reading the screen (XShmGetImage / XGetImage) creates no
damage, so capturing never wakes the loop by itself; and the pointer is a hardware or software
cursor that X does not count as damage, so pointer moves are not reported either (the cursor is
sent separately, if at all).
"""

from __future__ import annotations

import select
from typing import Any

from Xlib import X
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.ext import damage as xdamage

from rdesk.host.screen.xcb import XcbClosed, XcbDamage, XcbRequestError

__all__ = ["DamageUnavailable", "DamageWatcher", "watch_changes"]


class DamageUnavailable(Exception):
    """DAMAGE cannot be used on this display; poll the screen periodically instead."""


class DamageWatcher:
    """Watch the root window of ``display`` for any drawing.

    Uses report level *NonEmpty*: the server sends one event when the accumulated damage region
    goes from empty to non-empty, and :meth:`poll` empties the region again (DamageSubtract)
    before returning True. The subtract must be processed before any capture the caller issues
    afterwards; drawing that lands after the subtract is then either in that capture or reported
    by the next :meth:`poll` (no change is lost).

    ``connection``: the python-xlib display the capturer grabs on (see
    :attr:`rdesk.host.screen.xshm.ShmCapturer.connection`). The X server handles one connection's
    requests in order, so the subtract is merely flushed ahead of the grab. Without it the
    watcher opens its own connection and follows each subtract with a round trip. A shared
    connection stays open on :meth:`close`: its owner closes it.

    Raises :class:`DamageUnavailable` from the constructor if the display cannot be opened or the
    server lacks DAMAGE. Not thread-safe (with a shared connection, use it from the capturer's
    thread).
    """

    def __init__(self, display: str | None = None, *, connection: Any = None) -> None:
        self._owned = connection is None
        try:
            self._dpy: Any = xdisplay.Display(display) if self._owned else connection
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            raise DamageUnavailable(f"cannot open display {display or '$DISPLAY'}") from exc
        try:
            if not self._dpy.has_extension(xdamage.extname):
                raise DamageUnavailable(
                    f"X server on {display or '$DISPLAY'} has no DAMAGE extension"
                )
            # The protocol requires QueryVersion before any other DAMAGE request.
            self._dpy.damage_query_version()
            ext = self._dpy.query_extension(xdamage.extname)
            self._event_type = ext.first_event + xdamage.DamageNotifyCode
            self._root = self._dpy.screen().root
            self._damage = self._root.damage_create(xdamage.DamageReportNonEmpty)
            self._dpy.sync()
        except DamageUnavailable:
            self._close_connection()
            raise
        except (xerror.XError, xerror.ConnectionClosedError, OSError) as exc:
            self._close_connection()
            raise DamageUnavailable(f"DAMAGE setup failed: {exc}") from exc
        self._closed = False

    def fileno(self) -> int:
        """The X connection's socket; readable when an event may be pending."""
        return int(self._dpy.fileno())

    def pending(self) -> bool:
        """Whether :meth:`poll` may find something, without reading or resetting anything.

        True when an event is already queued (read along with a reply, e.g. a grab's) or the
        connection has unread data. Much cheaper than a :meth:`poll` that finds nothing (no
        python-xlib receive pass): the capture loop asks this after each grab, and the poll
        before the next grab does the draining and the reset, once a round instead of twice.
        A stray non-DAMAGE event makes it True once (the next poll drains it).
        """
        if self._closed:
            raise RuntimeError("DamageWatcher is closed")
        if self._dpy.display.event_queue:
            return True
        readable, _, _ = select.select([self._dpy.fileno()], [], [], 0)
        return bool(readable)

    def poll(self) -> bool:
        """Drain pending events without blocking; True if anything was drawn since last poll.

        When True, the damage region has been reset ahead of any capture started after this
        returns (synchronised with the server, or flushed ahead of the capturer's requests on
        a shared connection), so that capture sees at least every change reported here.
        """
        if self._closed:
            raise RuntimeError("DamageWatcher is closed")
        damaged = False
        while self._dpy.pending_events():
            event = self._dpy.next_event()
            if event.type == self._event_type:
                damaged = True
        if damaged:
            self._dpy.damage_subtract(self._damage, X.NONE, X.NONE)
            # The subtract must be done before the caller's capture: on our own connection a
            # round trip makes sure; on the capturer's, sending it first is enough. An event
            # that arrives meanwhile is left queued; it makes the next poll return True, which
            # costs at most one redundant capture, whereas dropping it would leave the region
            # non-empty and silence NonEmpty reporting for good.
            if self._owned:
                self._dpy.sync()
            else:
                self._dpy.flush()
        return damaged

    def close(self) -> None:
        """Destroy the damage object and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._dpy.damage_destroy(self._damage)
            if self._owned:
                self._dpy.close()
            else:
                self._dpy.flush()
        except (xerror.XError, xerror.ConnectionClosedError, OSError):
            pass

    def _close_connection(self) -> None:
        if self._owned:
            self._dpy.close()

    def __enter__(self) -> DamageWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watch_changes(display: str | None, capturer: Any) -> DamageWatcher | XcbDamage:
    """X DAMAGE for ``capturer`` on ``display``, on the connection its grabs go through: its
    xcb link (``capturer.xcb``, :class:`~rdesk.host.screen.xcb.XcbDamage`) or its python-xlib
    one (``capturer.connection``), else a connection of the watcher's own (a round trip per
    reset). A capturer with ``xcb`` has ``root_id``, the window it grabs. Raises
    :class:`DamageUnavailable`."""
    link = getattr(capturer, "xcb", None)
    if link is not None:
        try:
            return XcbDamage(link, int(capturer.root_id))
        except (XcbRequestError, XcbClosed) as exc:
            raise DamageUnavailable(f"DAMAGE setup failed: {exc}") from exc
    return DamageWatcher(display, connection=getattr(capturer, "connection", None))

