"""Change notification from the X DAMAGE extension, so a still screen costs almost nothing.

The capture loop waits for :meth:`DamageWatcher.fileno` to become readable (or a timeout), calls
:meth:`DamageWatcher.poll`, and grabs only when it returns True.

What DAMAGE does *not* report: reading the screen (mss's XShmGetImage / XGetImage) creates no
damage, so capturing never wakes the loop by itself; and the pointer is a hardware or software
cursor that X does not count as damage, so pointer moves are not reported either (the cursor is
sent separately, if at all).
"""

from __future__ import annotations

from typing import Any

from Xlib import X
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.ext import damage as xdamage

__all__ = ["DamageUnavailable", "DamageWatcher"]


class DamageUnavailable(Exception):
    """DAMAGE cannot be used on this display; poll the screen periodically instead."""


class DamageWatcher:
    """Watch the root window of ``display`` for any drawing, over its own X connection.

    Uses report level *NonEmpty*: the server sends one event when the accumulated damage region
    goes from empty to non-empty, and :meth:`poll` empties the region again (DamageSubtract)
    before returning True. The subtract is followed by a round trip, so it is processed before
    any capture the caller issues afterwards; drawing that lands after the subtract is therefore
    either in that capture or reported by the next :meth:`poll` (no change is lost).

    Raises :class:`DamageUnavailable` from the constructor if the display cannot be opened or the
    server lacks DAMAGE. Not thread-safe.
    """

    def __init__(self, display: str | None = None) -> None:
        try:
            self._dpy: Any = xdisplay.Display(display)
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
            self._dpy.close()
            raise
        except (xerror.XError, xerror.ConnectionClosedError, OSError) as exc:
            self._dpy.close()
            raise DamageUnavailable(f"DAMAGE setup failed: {exc}") from exc
        self._closed = False

    def fileno(self) -> int:
        """The X connection's socket; readable when an event may be pending."""
        return int(self._dpy.fileno())

    def poll(self) -> bool:
        """Drain pending events without blocking; True if anything was drawn since last poll.

        When True, the damage region has been reset and synchronised with the server, so a
        capture started after this returns sees at least every change reported here.
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
            # Round trip: the subtract is done before the caller's capture is issued. An event
            # that arrives meanwhile is left queued; it makes the next poll return True, which
            # costs at most one redundant capture, whereas dropping it would leave the region
            # non-empty and silence NonEmpty reporting for good.
            self._dpy.sync()
        return damaged

    def close(self) -> None:
        """Destroy the damage object and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._dpy.damage_destroy(self._damage)
            self._dpy.close()
        except (xerror.XError, xerror.ConnectionClosedError, OSError):
            pass

    def __enter__(self) -> DamageWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
