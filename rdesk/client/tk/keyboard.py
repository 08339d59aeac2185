"""The viewer's keyboard: which keys it holds on the host, and X11 autorepeat folded in.

X11 autorepeats a held key as a *release* and a *press* carrying the same timestamp. Sent
as they come, the host would see the key go up and down many times a second. So a release
is held back for :data:`REPEAT_WAIT_MS`: if the press that follows has the same keycode and
timestamp, the release is dropped and the press is sent again (a repeat, as VNC viewers
do); otherwise the release goes out when the wait ends or as soon as anything else happens.

No toolkit: :class:`Keyboard` is told about key events and is driven by timers it asks a
:class:`Scheduler` for (Tk's ``root.after``/``after_cancel`` in the window, a fake clock in
the tests). What to send goes to a ``send(keysym, down)`` callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["REPEAT_WAIT_MS", "Grabber", "Keyboard", "KeyboardGrab", "Scheduler"]

#: A released key waits this long (ms) for X11's autorepeat press that follows it.
REPEAT_WAIT_MS = 30


class Scheduler(Protocol):
    """Calls a function later: the subset of Tk's ``after`` the keyboard needs."""

    def after(self, ms: int, func: Callable[[], None]) -> str:
        """Call ``func()`` in ``ms`` milliseconds; return a handle for :meth:`after_cancel`."""
        ...

    def after_cancel(self, id: str) -> None:
        """Forget the call ``id`` (which has not run yet)."""
        ...


class Keyboard:
    """Keys held on the host, keyed by the keycode that pressed them.

    :param send: sends one key event to the host.
    :param active: whether input goes to the host now (control, not view-only); while it
        does not, nothing is sent and no new key is held.
    :param scheduler: runs the autorepeat wait.
    """

    def __init__(
        self,
        send: Callable[[int, bool], None],
        active: Callable[[], bool],
        scheduler: Scheduler,
    ) -> None:
        self._send = send
        self._active = active
        self._scheduler = scheduler
        #: keycode -> the keysym sent when it went down (released under the same keysym).
        self._held: dict[int, int] = {}
        #: A release waiting for autorepeat's press: (keycode, timestamp, keysym).
        self._pending: tuple[int, int, int] | None = None
        self._timer: str | None = None

    @property
    def held(self) -> dict[int, int]:
        """A copy of the held keys: keycode -> keysym."""
        return dict(self._held)

    def on_press(self, keycode: int, stamp: int) -> bool:
        """A key went down at ``stamp`` (the event's ms timestamp).

        Returns True if this is autorepeat's press twin of the pending release: the release
        is dropped, the press sent again, and the event needs nothing more. Otherwise any
        pending release is sent first (keys keep their order) and False is returned: the
        caller decides what the key means and calls :meth:`press` to send it.
        """
        pending = self._pending
        if pending is not None and pending[0] == keycode and pending[1] == stamp:
            self._cancel_pending()
            if self._active() and keycode in self._held:
                self._send(self._held[keycode], True)
            return True
        self.flush_release()
        return False

    def press(self, keycode: int, keysym: int) -> None:
        """Hold ``keysym`` (pressed by ``keycode``) on the host; nothing while inactive."""
        if not self._active():
            return
        self._held[keycode] = keysym
        self._send(keysym, True)

    def on_release(self, keycode: int, stamp: int) -> None:
        """A key went up at ``stamp``: its release waits :data:`REPEAT_WAIT_MS` for a repeat.

        A key this keyboard does not hold (a hotkey, one pressed elsewhere) is ignored.
        """
        keysym = self._held.get(keycode)
        if keysym is None:
            return
        self.flush_release()
        self._pending = (keycode, stamp, keysym)
        self._timer = self._scheduler.after(REPEAT_WAIT_MS, self._wait_over)

    def flush_release(self) -> None:
        """Send the pending release now (if there is one)."""
        pending = self._pending
        self._cancel_pending()
        if pending is None:
            return
        keycode, _, keysym = pending
        # Released under the keysym it was pressed with (Shift may have gone up first).
        if self._held.pop(keycode, None) is not None and self._active():
            self._send(keysym, False)

    def release_all(self) -> None:
        """Release every held key on the host (focus lost, menu, view-only); forget them."""
        self._cancel_pending()
        if self._active():
            for keysym in self._held.values():
                self._send(keysym, False)
        self._held.clear()

    def forget(self) -> None:
        """Forget the held keys without sending: the host released them (connection ended)."""
        self._cancel_pending()
        self._held.clear()

    def _wait_over(self) -> None:
        self._timer = None  # fired: there is nothing left to cancel
        self.flush_release()

    def _cancel_pending(self) -> None:
        if self._timer is not None:
            self._scheduler.after_cancel(self._timer)
            self._timer = None
        self._pending = None


class Grabber(Protocol):
    """What :class:`KeyboardGrab` needs of a Tk widget (its ``grab`` commands)."""

    def grab_set_global(self) -> None: ...

    def grab_release(self) -> None: ...


class KeyboardGrab:
    """The viewer's keyboard grab: while the window has the focus, every key comes to it.

    A window manager's or desktop's shortcuts (Alt+Tab, Super, Ctrl+Alt+arrows) are passive
    grabs; an active grab overrides them, so those keys reach the host instead. Tk grabs the
    keyboard only together with the pointer (``grab -global``), so opening the F8 menu and
    losing the focus release it (the desktop's keys and clicks work again), and it is taken
    again at the next click in the window or focus in, while ``wanted()`` (connected in
    control, and the F8 menu's "Keyboard grab" ticked) says so.
    """

    def __init__(self, widget: Grabber, wanted: Callable[[], bool]) -> None:
        self._widget = widget
        self._wanted = wanted
        self.held = False
        self._paused = False  # released by the F8 menu: only a click takes it back

    def take(self, *, click: bool = False) -> None:
        """Grab now if wanted and not held; a grab another client holds is let be.

        After :meth:`pause` only a ``click`` in the window grabs again (the menu's own focus
        changes do not).
        """
        if click:
            self._paused = False
        if self.held or self._paused or not self._wanted():
            return
        try:
            self._widget.grab_set_global()
        except Exception:  # tkinter.TclError: another application holds a grab already
            return
        self.held = True

    def pause(self) -> None:
        """Release until the next click in the window (the F8 menu)."""
        self.release()
        self._paused = True

    def release(self) -> None:
        """Give the keyboard (and pointer) back to the desktop."""
        if self.held:
            self.held = False
            self._widget.grab_release()
