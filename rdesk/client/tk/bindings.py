"""The window's input: Tk events on the screen canvas, turned into what the host is sent.

:class:`CanvasInput` binds the canvas's events. Keys go through the
:class:`~rdesk.client.tk.keyboard.Keyboard` (X11 autorepeat), the pointer and wheel through the
:class:`~rdesk.client.tk.pointer.Pointer` (motion coalesced: the window's tick flushes it),
window coordinates mapped to host pixels by the current viewport. The window's own hotkeys
(F8 menu, F9 overlay, F11 fullscreen) never reach the host; nothing is sent while the window
does not send input (view-only, or not in control).
"""

from __future__ import annotations

import tkinter
from collections.abc import Callable
from typing import Any

from rdesk.client.tk.clipboard import TkClipboard
from rdesk.client.tk.cursor import CursorSprite
from rdesk.client.tk.keyboard import Keyboard, KeyboardGrab
from rdesk.client.tk.keys import tk_to_keysym
from rdesk.client.tk.pointer import WHEEL_BUTTONS, Pointer, wheel_steps
from rdesk.client.tk.viewport import Viewport

__all__ = ["CanvasInput"]


class CanvasInput:
    """The canvas's event handlers; :meth:`bind` installs them (the constructor does)."""

    def __init__(
        self,
        canvas: tkinter.Canvas,
        keyboard: Keyboard,
        pointer: Pointer,
        grab: KeyboardGrab,
        sprite: CursorSprite,
        clipboard: TkClipboard,
        *,
        viewport: Callable[[], Viewport],
        sends_input: Callable[[], bool],
        release_all: Callable[[], None],
        hotkeys: dict[str, Callable[[], None]],
        x11: bool,
    ) -> None:
        self.canvas = canvas
        self.keyboard = keyboard
        self.pointer = pointer
        self.grab = grab
        self.sprite = sprite
        self._clipboard = clipboard
        self._viewport = viewport
        self._sends_input = sends_input
        self._release_all = release_all
        self._hotkeys = hotkeys
        self._x11 = x11
        self.bind()

    def bind(self) -> None:
        """Bind the canvas's key, button, motion, wheel, focus and crossing events."""
        c = self.canvas
        c.bind("<KeyPress>", self.on_key_press)
        c.bind("<KeyRelease>", self.on_key_release)
        c.bind("<FocusOut>", lambda _e: self._release_all())
        c.bind("<FocusOut>", lambda _e: self.grab.release(), add="+")
        c.bind("<FocusIn>", lambda _e: self._clipboard.focus_in())
        # Grab at a real focus change only: ungrabbing (the F8 menu's) sends a FocusIn too.
        take = c.register(lambda mode: self.grab.take() if mode == "NotifyNormal" else None)
        c.tk.call("bind", str(c), "<FocusIn>", f"+{take} %m")
        c.bind("<Motion>", self.on_motion)
        for number in (1, 2, 3):
            c.bind(f"<ButtonPress-{number}>", self.on_button)
            c.bind(f"<ButtonRelease-{number}>", self.on_button)
        for number in (4, 5):  # X11 wheel buttons
            c.bind(f"<ButtonPress-{number}>", self.on_wheel_button)
        # Tk 8.6 cannot name buttons 6 and 7 (horizontal wheel): catch them generically.
        c.bind("<ButtonPress>", self.on_wheel_button)
        c.bind("<MouseWheel>", self.on_mouse_wheel)
        c.bind("<Shift-MouseWheel>", self.on_mouse_wheel)
        c.bind("<Enter>", lambda _e: c.focus_set())
        c.bind("<Leave>", lambda _e: self.sprite.left())

    def on_key_press(self, event: tkinter.Event[Any]) -> str:
        if self.keyboard.on_press(int(event.keycode), int(event.time)):
            return "break"  # X11 autorepeat: the keyboard sent the repeat
        hotkey = self._hotkeys.get(event.keysym)
        if hotkey is not None:  # the window's own keys never reach the host
            hotkey()
            return "break"
        keysym = tk_to_keysym(event.keysym, int(event.keysym_num), event.char or "", x11=self._x11)
        if keysym is None or not self._sends_input():
            return "break"
        self.pointer.flush()
        self.keyboard.press(int(event.keycode), keysym)
        return "break"

    def on_key_release(self, event: tkinter.Event[Any]) -> str:
        self.keyboard.on_release(int(event.keycode), int(event.time))
        return "break"

    def _host_xy(self, event: tkinter.Event[Any]) -> tuple[int, int]:
        return self._viewport().window_to_host(int(event.x), int(event.y))

    def on_motion(self, event: tkinter.Event[Any]) -> None:
        self.pointer.moved(self._host_xy(event))  # sent by the next tick: one per frame
        self.sprite.moved(int(event.x), int(event.y))

    def on_button(self, event: tkinter.Event[Any]) -> None:
        self.grab.take(click=True)  # a click takes the keyboard back after the F8 menu
        self.keyboard.flush_release()
        down = str(event.type) in ("ButtonPress", "4")
        self.pointer.button(self._host_xy(event), int(event.num), down)

    def on_wheel_button(self, event: tkinter.Event[Any]) -> None:
        steps = WHEEL_BUTTONS.get(int(event.num))
        if steps is not None:
            self.pointer.wheel(self._host_xy(event), *steps)

    def on_mouse_wheel(self, event: tkinter.Event[Any]) -> None:
        dx, dy = wheel_steps(int(event.delta), shift=bool(int(event.state) & 0x1))
        self.pointer.wheel(self._host_xy(event), dx, dy)
