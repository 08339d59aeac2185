"""XTest injection through pynput's X controllers: :class:`XBackend`, the injector's backend.

pynput's X backend opens its connection from ``$DISPLAY`` when it is imported, so the
constructor sets ``os.environ["DISPLAY"]`` before importing it: one host process, one display.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from rdesk.protocol.keysyms import KEYSYMS, keysym_name

__all__ = ["REBIND_AGE", "XBackend"]

log = logging.getLogger(__name__)

_SHIFT_L = KEYSYMS["Shift_L"]
#: Seconds a borrowed keycode keeps its binding after its last use before it may be rebound
#: to another keysym (only when all spare keycodes are taken; Xvfb has about 19).
REBIND_AGE = 0.05


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
