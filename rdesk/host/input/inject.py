"""Input injection into the host's X display: the only importer of pynput.

:class:`PynputInjector` implements :class:`rdesk.host.serve.server.InputSink`. It is split in two:

- :class:`Injector` holds the policy, independent of X: which keys and buttons each viewer
  (``owner``) holds, so that :meth:`Injector.release_all` releases exactly those; releasing a
  viewer's keys when another viewer starts typing; a token-bucket rate limit per viewer that
  never drops a release; and catching every error of the backend, so a failed injection is
  logged and never ends the connection.
- :class:`XBackend` turns keysyms, buttons and wheel detents into XTest events through pynput's
  X controllers (real device events, not ``XSendEvent``, which many applications ignore).

One host process injects into one display: pynput's X backend opens its connection from
``$DISPLAY`` when it is imported, so the constructor sets ``os.environ["DISPLAY"]`` before
importing it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from rdesk.protocol.keysyms import KEYSYMS, keysym_name

__all__ = ["Backend", "Injector", "PynputInjector", "TokenBucket", "XBackend"]

log = logging.getLogger(__name__)

_SHIFT_L = KEYSYMS["Shift_L"]
_SHIFT_KEYSYMS = frozenset((KEYSYMS["Shift_L"], KEYSYMS["Shift_R"]))
#: Seconds a borrowed keycode keeps its binding after its last use before it may be rebound
#: to another keysym (only when all spare keycodes are taken; Xvfb has about 19).
REBIND_AGE = 0.05
#: Pointer buttons carried in :class:`~rdesk.protocol.messages.Pointer` (bit n-1 = button n).
_BUTTONS = range(1, 9)


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are enough; return whether they were spent."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class Backend(Protocol):
    """What :class:`Injector` needs from the display; every method may raise anything."""

    def press_key(self, keysym: int) -> int:
        """Press the key that types ``keysym``; return the keycode pressed (for release)."""
        ...

    def release_key(self, keycode: int) -> None: ...

    def move(self, x: int, y: int) -> None: ...

    def button(self, button: int, down: bool) -> None: ...

    def scroll(self, dx: int, dy: int) -> None:
        """Scroll ``dy`` detents down (negative: up) and ``dx`` right."""
        ...

    @property
    def size(self) -> tuple[int, int]: ...


class _Owner:
    """What one viewer holds down, and its rate limit."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.keys: dict[int, int] = {}  # keysym -> keycode pressed for it
        self.buttons = 0  # bit n-1 = button n
        self.bucket = bucket
        self.dropped = 0
        self.dropped_logged_at = float("-inf")

    @property
    def holds(self) -> bool:
        return bool(self.keys or self.buttons)


class Injector:
    """Per-viewer input policy in front of a :class:`Backend` (see the module docstring).

    Presses and moves cost one token each (a wheel message one per detent); when a viewer's
    bucket is empty they are dropped and counted, and the count is logged at most once a
    second. Releases are never dropped: a viewer must always be able to let go.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        rate: float = 1000.0,
        burst: float = 2000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.owners: dict[int, _Owner] = {}
        #: The viewer whose input came last; another viewer's input releases what it holds.
        self.active: int | None = None
        #: Errors caught from the backend (tests and stats read this).
        self.errors = 0
        #: Presses and moves dropped by the rate limit, all viewers, since the start.
        self.dropped_total = 0
        self._error_logged_at = float("-inf")

    # --- InputSink -----------------------------------------------------------------------------

    def pointer(self, owner: int, x: int, y: int, buttons: int) -> None:
        state = self._enter(owner)
        released = state.buttons & ~buttons
        pressed = buttons & ~state.buttons
        if released:
            # Never drop a release; the presses in the same message still need a token.
            do_press = bool(pressed) and self._allow(owner, state)
        elif self._allow(owner, state):
            do_press = True
        else:
            return
        width, height = self._size()
        x = min(max(x, 0), width - 1)
        y = min(max(y, 0), height - 1)
        self._guard("move", self.backend.move, x, y)
        for button in _BUTTONS:
            bit = 1 << (button - 1)
            if released & bit:
                state.buttons &= ~bit
                if not self._held_elsewhere(owner, button=bit):
                    self._guard("button release", self.backend.button, button, False)
            elif do_press and pressed & bit:
                state.buttons |= bit
                self._guard("button press", self.backend.button, button, True)

    def wheel(self, owner: int, x: int, y: int, dx: int, dy: int) -> None:
        state = self._enter(owner)
        if not self._allow(owner, state, cost=max(1, abs(dx) + abs(dy))):
            return
        width, height = self._size()
        self._guard("move", self.backend.move, min(max(x, 0), width - 1),
                    min(max(y, 0), height - 1))
        self._guard("scroll", self.backend.scroll, dx, dy)

    def key(self, owner: int, keysym: int, down: bool) -> None:
        state = self._enter(owner)
        if not down:
            keycode = state.keys.pop(keysym, None)
            if keycode is None:
                log.debug("viewer %d released %s, which it did not hold", owner,
                          keysym_name(keysym))
            elif not self._held_elsewhere(owner, keycode=keycode):
                self._guard("key release", self.backend.release_key, keycode)
            return
        if not self._allow(owner, state):
            return
        pressed = self._guard("key press", self.backend.press_key, keysym)
        if isinstance(pressed, int):
            state.keys[keysym] = pressed

    def release_all(self, owner: int) -> None:
        """Release every key and button ``owner`` holds (it left, or lost control).

        The viewer's state (its rate-limit bucket too) is forgotten.
        """
        state = self.owners.pop(owner, None)
        if state is not None:
            self._report_dropped(owner, state, self.clock())
            self._release(owner, state)
        if self.active == owner:
            self.active = None

    def _release(self, owner: int, state: _Owner) -> None:
        if not state.holds:
            return
        log.info(
            "releasing what viewer %d held: keys %s, buttons %#x", owner,
            ", ".join(keysym_name(k) for k in state.keys) or "none", state.buttons,
        )
        # Keys in reverse order of pressing, so modifiers go last, as a person would.
        for keycode in reversed(list(state.keys.values())):
            if not self._held_elsewhere(owner, keycode=keycode):
                self._guard("key release", self.backend.release_key, keycode)
        state.keys.clear()
        for button in _BUTTONS:
            bit = 1 << (button - 1)
            if state.buttons & bit and not self._held_elsewhere(owner, button=bit):
                self._guard("button release", self.backend.button, button, False)
        state.buttons = 0

    # --- helpers -------------------------------------------------------------------------------

    def _enter(self, owner: int) -> _Owner:
        state = self.owners.get(owner)
        if state is None:
            state = self.owners[owner] = _Owner(TokenBucket(self.rate, self.burst, self.clock()))
        if self.active is not None and self.active != owner:
            # One keyboard, one pointer: a modifier or button still held by the previous
            # viewer would change what this one types or drags.
            previous = self.owners.get(self.active)
            if previous is not None:
                self._release(self.active, previous)
        self.active = owner
        return state

    def _allow(self, owner: int, state: _Owner, cost: float = 1.0) -> bool:
        now = self.clock()
        if state.bucket.take(now, cost):
            if state.dropped and now - state.dropped_logged_at >= 1.0:
                self._report_dropped(owner, state, now)  # the flood is over: say how big
            return True
        state.dropped += 1
        self.dropped_total += 1
        if now - state.dropped_logged_at >= 1.0:
            self._report_dropped(owner, state, now)
        return False

    def _report_dropped(self, owner: int, state: _Owner, now: float) -> None:
        """Log the drops not reported yet (at most once a second while a flood lasts, and
        once more when it ends or the viewer leaves), so the lines add up to the total."""
        if not state.dropped:
            return
        log.warning(
            "viewer %d exceeds %g input events/s: %d event(s) dropped", owner, self.rate,
            state.dropped,
        )
        state.dropped_logged_at = now
        state.dropped = 0

    def _held_elsewhere(self, owner: int, *, keycode: int | None = None, button: int = 0) -> bool:
        for other, state in self.owners.items():
            if other == owner:
                continue
            if keycode is not None and keycode in state.keys.values():
                return True
            if state.buttons & button:
                return True
        return False

    def _size(self) -> tuple[int, int]:
        try:
            return self.backend.size
        except Exception:
            return (1 << 15, 1 << 15)

    def _guard(self, what: str, func: Callable[..., Any], *args: Any) -> Any:
        try:
            return func(*args)
        except Exception as exc:  # X errors, a lost X connection...: log, never end the viewer
            self.errors += 1
            now = self.clock()
            if now - self._error_logged_at >= 1.0:
                self._error_logged_at = now
                log.warning("input injection failed (%s %s): %s: %s", what, args,
                            type(exc).__name__, exc)
            return None


class XBackend:
    """XTest injection through pynput's X keyboard and mouse controllers.

    Keysyms map to keycodes of the current keyboard mapping. A keysym on the second level of
    its key (``A``, ``!``, ``{``) gets a Shift press around it unless Shift is already down
    (with Caps Lock taken into account for letters). A keysym on no key at all (``é`` on a US
    layout, ``€``, ``✓``) is bound to a spare keycode first, as xdotool does; spare keycodes are
    reused least recently used first, never while held nor within :data:`REBIND_AGE` of their
    last use (which briefly blocks a long run of such characters), and restored by
    :meth:`close`.
    """

    def __init__(self, display: str) -> None:
        # pynput's X backend connects to $DISPLAY when it is *imported* (pynput._util.xorg):
        # one host process, one display.
        os.environ["DISPLAY"] = display
        import Xlib.ext.xtest
        import Xlib.X
        from pynput import keyboard, mouse
        from pynput._util.xorg import display_manager, keyboard_mapping

        self._X = Xlib.X
        self._xtest = Xlib.ext.xtest
        self._display_manager = display_manager
        self._keyboard_mapping_of = keyboard_mapping
        self._keyboard = keyboard.Controller()
        self._mouse = mouse.Controller()
        self._buttons = {b.value: b for b in mouse.Button}
        self._dpy = self._keyboard._display  # the Xlib display pynput opened for us
        name = self._dpy.get_display_name()
        if name != display:
            log.warning("injecting into display %s, asked for %s", name, display)
        screen = self._dpy.screen()
        self._size = (int(screen.width_in_pixels), int(screen.height_in_pixels))
        self._min_keycode = int(self._dpy.display.info.min_keycode)
        self._max_keycode = int(self._dpy.display.info.max_keycode)
        self._mapping: dict[int, tuple[int, int]] = {}
        self._spare: list[int] = []
        self._borrowed: dict[int, int] = {}  # keysym -> keycode, least recently used first
        self._down: dict[int, int] = {}  # keycode -> presses not yet released
        self._used_at: dict[int, float] = {}  # borrowed keycode -> when last pressed
        self._refresh_mapping()

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _refresh_mapping(self) -> None:
        with self._display_manager(self._dpy) as dm:
            self._mapping = self._keyboard_mapping_of(dm)
            count = self._max_keycode - self._min_keycode + 1
            rows = dm.get_keyboard_mapping(self._min_keycode, count)
        self._spare = [
            self._min_keycode + i for i, row in enumerate(rows) if not any(row)
        ]

    def _fake(self, kind: int, keycode: int) -> None:
        with self._display_manager(self._dpy) as dm:
            self._xtest.fake_input(dm, kind, keycode)

    def _modifier_state(self) -> int:
        with self._display_manager(self._dpy) as dm:
            return int(dm.screen().root.query_pointer().mask)

    def press_key(self, keysym: int) -> int:
        X = self._X
        found = self._mapping.get(keysym)
        if found is not None and found[1] & ~X.ShiftMask:
            found = None  # on a Mode_switch level: borrow a keycode instead
        if found is None:
            keycode = self._borrow(keysym)
            self._press(keycode)
            return keycode
        keycode, shift_state = found
        want_shift = bool(shift_state & X.ShiftMask)
        state = self._modifier_state()
        if state & X.LockMask and _is_letter(keysym):
            want_shift = not want_shift
        if want_shift and not state & X.ShiftMask:
            shift = self._mapping.get(_SHIFT_L, (0, 0))[0]
            if shift:
                self._fake(X.KeyPress, shift)
                try:
                    self._press(keycode)
                finally:
                    self._fake(X.KeyRelease, shift)
                return keycode
        self._press(keycode)
        return keycode

    def _press(self, keycode: int) -> None:
        self._fake(self._X.KeyPress, keycode)
        self._down[keycode] = self._down.get(keycode, 0) + 1

    def release_key(self, keycode: int) -> None:
        count = self._down.pop(keycode, 0)
        if count > 1:
            self._down[keycode] = count - 1
        self._fake(self._X.KeyRelease, keycode)

    def _borrow(self, keysym: int) -> int:
        keycode = self._borrowed.pop(keysym, None)
        if keycode is None:
            free = set(self._spare) - set(self._borrowed.values())
            if free:
                keycode = min(free)
            else:
                victim = next((k for k, c in self._borrowed.items() if not self._down.get(c)),
                              None)
                if victim is None:
                    raise RuntimeError(f"no spare keycode to type {keysym_name(keysym)}")
                keycode = self._borrowed.pop(victim)
                # Clients look a keycode up when they *handle* its MappingNotify, which may be
                # after we rebound it again: give them time to handle the last use first.
                wait = REBIND_AGE - (time.monotonic() - self._used_at.get(keycode, 0.0))
                if wait > 0:
                    time.sleep(wait)
            with self._display_manager(self._dpy) as dm:
                dm.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self._borrowed[keysym] = keycode  # most recently used last
        self._used_at[keycode] = time.monotonic()
        return keycode

    def move(self, x: int, y: int) -> None:
        self._mouse.position = (x, y)

    def button(self, button: int, down: bool) -> None:
        which = self._buttons[button]
        if down:
            self._mouse.press(which)
        else:
            self._mouse.release(which)

    def scroll(self, dx: int, dy: int) -> None:
        # rdesk: positive dy scrolls down (X button 5); pynput: positive dy scrolls up.
        self._mouse.scroll(dx, -dy)

    def close(self) -> None:
        """Give the borrowed keycodes back (empty them) and close the X connection."""
        try:
            if self._borrowed:
                with self._display_manager(self._dpy) as dm:
                    for keycode in self._borrowed.values():
                        dm.change_keyboard_mapping(keycode, [(0, 0)])
                self._borrowed.clear()
        finally:
            self._close_displays()

    def _close_displays(self) -> None:
        # Close pynput's connections now, and stop its __del__ from closing them again (which
        # prints a traceback if the X server has gone meanwhile).
        controllers = [getattr(self, name, None) for name in ("_keyboard", "_mouse")]
        displays = [c.__dict__.pop("_display", None) for c in controllers if c is not None]
        for display in displays:
            if display is not None:
                with contextlib.suppress(Exception):
                    display.close()

    def __del__(self) -> None:  # an injector nobody closed (e.g. its X server went first)
        with contextlib.suppress(Exception):
            self._close_displays()


def _is_letter(keysym: int) -> bool:
    if keysym < 0x100:
        ch = chr(keysym)
        return ch.lower() != ch.upper()
    return False


class PynputInjector(Injector):
    """The host's :class:`~rdesk.host.serve.server.InputSink`: XTest through pynput on
    ``display``."""

    def __init__(self, display: str, **policy: Any) -> None:
        self.x = XBackend(display)
        super().__init__(self.x, **policy)

    def close(self) -> None:
        try:
            self.x.close()
        except Exception as exc:
            log.warning("closing the input injector: %s", exc)
