"""Input injection into the host's X display.

:class:`PynputInjector` implements :class:`rdesk.host.serve.viewerinput.InputSink`. It is split
in two:

- :class:`Injector` holds the policy, independent of X: which keys and buttons each viewer
  (``owner``) holds, so that :meth:`Injector.release_all` releases exactly those; releasing a
  viewer's keys when another viewer starts typing; a token-bucket rate limit per viewer that
  never drops a release; and catching every error of the backend, so a failed injection is
  logged and never ends the connection.
- :class:`~rdesk.host.input.xtest.XBackend` turns keysyms, buttons and wheel detents into XTest
  events through pynput's X controllers (real device events, not ``XSendEvent``, which many
  applications ignore).
  It is the only importer of pynput.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from rdesk.host.input.xtest import XBackend
from rdesk.protocol.keysyms import keysym_name

__all__ = ["Backend", "Injector", "PynputInjector", "TokenBucket"]

log = logging.getLogger(__name__)

#: Pointer buttons carried in :class:`~rdesk.protocol.inputs.Pointer` (bit n-1 = button n).
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
        self._on_dropped: Callable[[int, int], None] | None = None
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

    def report_drops_to(self, callback: Callable[[int, int], None]) -> None:
        """Tell ``callback(owner, count)`` of the drops each time they are logged: at most
        once a second per viewer while a flood lasts, and once more when it ends or the
        viewer leaves, so the counts add up to :attr:`dropped_total`."""
        self._on_dropped = callback

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
        count, state.dropped = state.dropped, 0
        if self._on_dropped is not None:
            self._on_dropped(owner, count)

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
