"""A test X client that takes the keyboard focus and reports every input event it receives.

Run it with ``DISPLAY`` set, as ``python -m tests.xclients.recorder`` or by path::

    python tests/xclients/recorder.py [--geometry WxH+X+Y] [--override-redirect]
                                      [--flash] [--no-motion] [--background RRGGBB]

It maps a window (by default covering the whole screen), gives it the input focus and prints
``{"type": "ready", "window": ID, "geometry": [x, y, w, h]}`` once the window is mapped and
focused. Then it writes one JSON object per line (flushed) for each event::

    {"type": "key_press", "keycode": 38, "keysym": 65, "keysym_name": "A", "state": 1,
     "text": "A", "x": 5, "y": 7, "time": 123, "synthetic": false}
    {"type": "key_release", ...same fields...}
    {"type": "button_press", "button": 3, "x": 10, "y": 20, "win_x": 10, "win_y": 20,
     "state": 0, "time": 123, "synthetic": false}
    {"type": "button_release", ...}
    {"type": "motion", "x": 10, "y": 20, "win_x": 10, "win_y": 20, "state": 0, "time": 123}
    {"type": "focus_in" | "focus_out", "mode": 0, "detail": 3}
    {"type": "mapping", "request": 1}

``x``/``y`` are root (screen) coordinates. ``keysym`` follows the core protocol's rules for
Shift, Lock (as Caps Lock), Num Lock and Mode_switch; ``text`` is what XLookupString would give
(``"\\r"`` for Return, ``"\\b"`` for BackSpace, control characters with Control, ``""`` for
keys without text). ``synthetic`` is true for events sent with XSendEvent.

With ``--flash`` every KeyPress fills the window with the next colour of a fixed cycle and
waits for the server (XSync) before reporting the event, whose line then carries
``"flash": "RRGGBB"``; a latency benchmark can time key event to changed pixels.

Commands on stdin: ``focus`` takes the focus again; ``quit`` (or end of input) exits.
The script is standalone: it needs python-xlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import sys
import time
from typing import Any

FLASH_COLOURS = (
    "ff0000",
    "00ff00",
    "0000ff",
    "ffff00",
    "ff00ff",
    "00ffff",
    "ffffff",
    "000000",
)

# XLookupString's text for function keys that have one; keypad keys are handled in key_text.
_SPECIAL_TEXT = {
    0xFF08: "\b",  # BackSpace
    0xFF09: "\t",  # Tab
    0xFF0A: "\n",  # Linefeed
    0xFF0B: "\x0b",  # Clear
    0xFF0D: "\r",  # Return
    0xFF1B: "\x1b",  # Escape
    0xFFFF: "\x7f",  # Delete
    0xFF80: " ",  # KP_Space
    0xFF89: "\t",  # KP_Tab
    0xFF8D: "\r",  # KP_Enter
    0xFFBD: "=",  # KP_Equal
}

_NAMES: dict[int, str] = {}


def keysym_name(keysym: int) -> str:
    """The name of a keysym as in keysymdef.h without ``XK_`` (``"A"``, ``"Return"``...)."""
    if not _NAMES:
        from Xlib import XK

        groups = (
            "miscellany latin1 latin2 latin3 latin4 greek cyrillic xkb xf86 technical special "
            "publishing katakana arabic hebrew thai korean apl"
        )
        for group in groups.split():
            try:
                XK.load_keysym_group(group)
            except ImportError:
                continue
        for name, value in sorted(vars(XK).items()):
            if name.startswith("XK_") and isinstance(value, int):
                _NAMES.setdefault(value, name[3:])
    if keysym in _NAMES:
        return _NAMES[keysym]
    if 0x01000100 <= keysym <= 0x0110FFFF:
        return f"U{keysym - 0x01000000:04X}"
    return "NoSymbol" if keysym == 0 else f"0x{keysym:x}"


def convert_case(keysym: int) -> tuple[int, int]:
    """``(lower, upper)`` case variants of a keysym (Latin-1 and Unicode keysyms)."""
    if keysym < 0x100:
        ch = chr(keysym)
        if ch.isalpha() and keysym not in (0xDF, 0xFF, 0xAA, 0xBA, 0xB5):
            return ord(ch.lower()), ord(ch.upper())
        return keysym, keysym
    if 0x01000100 <= keysym <= 0x0110FFFF:
        ch = chr(keysym - 0x01000000)
        lower, upper = ch.lower(), ch.upper()
        if len(lower) == 1 and len(upper) == 1:
            return _unicode_keysym(lower), _unicode_keysym(upper)
    return keysym, keysym


def _unicode_keysym(ch: str) -> int:
    code = ord(ch)
    return code if code < 0x100 else 0x01000000 + code


def is_keypad(keysym: int) -> bool:
    """True for keypad keysyms (``KP_Space`` .. ``KP_Equal``)."""
    return 0xFF80 <= keysym <= 0xFFBD


class KeyboardState:
    """Keycode + modifier state to keysym + text, following the core protocol's rules."""

    def __init__(self, display: Any) -> None:
        self.display = display
        self.mode_switch_mask = 0
        self.num_lock_mask = 0
        self.refresh_modifiers()

    def refresh_modifiers(self) -> None:
        """Find which modifier bits carry Mode_switch and Num_Lock."""
        from Xlib import XK

        mode_switch = set(self._keycodes(XK.string_to_keysym("Mode_switch")))
        num_lock = set(self._keycodes(XK.string_to_keysym("Num_Lock")))
        self.mode_switch_mask = self.num_lock_mask = 0
        for index, keycodes in enumerate(self.display.get_modifier_mapping()):
            codes = {k for k in keycodes if k}
            if index < 3:  # Shift, Lock, Control
                continue
            if codes & mode_switch:
                self.mode_switch_mask |= 1 << index
            if codes & num_lock:
                self.num_lock_mask |= 1 << index

    def _keycodes(self, keysym: int) -> list[int]:
        return [code for code, _index in self.display.keysym_to_keycodes(keysym)]

    def keysym(self, keycode: int, state: int) -> int:
        """The keysym a key press of ``keycode`` with modifier ``state`` means."""
        from Xlib import X

        syms = [self.display.keycode_to_keysym(keycode, i) for i in range(4)]
        group = 1 if state & self.mode_switch_mask else 0
        first, second = syms[2 * group], syms[2 * group + 1]
        if group and first == X.NoSymbol and second == X.NoSymbol:
            first, second = syms[0], syms[1]
        if second == X.NoSymbol:
            first, second = convert_case(first)
        shift = bool(state & X.ShiftMask)
        lock = bool(state & X.LockMask)
        if state & self.num_lock_mask and is_keypad(second):
            return first if shift else second
        if not shift and not lock:
            return first
        if not shift:  # Caps Lock alone
            return convert_case(first)[1]
        if lock:  # Shift + Caps Lock
            return convert_case(second)[1]
        return second

    def text(self, keysym: int, state: int) -> str:
        """What XLookupString would return for ``keysym`` with modifier ``state``."""
        from Xlib import X

        if keysym in _SPECIAL_TEXT:
            text = _SPECIAL_TEXT[keysym]
        elif 0xFFAA <= keysym <= 0xFFB9:  # KP_Multiply .. KP_9
            text = chr(keysym & 0x7F)
        elif 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
            text = chr(keysym)
        elif 0x01000100 <= keysym <= 0x0110FFFF:
            text = chr(keysym - 0x01000000)
        elif 0xFF00 <= keysym <= 0xFFFF:
            text = ""
        else:
            text = self.display.lookup_string(keysym) or ""
        if state & X.ControlMask and len(text) == 1:
            code = ord(text)
            if 0x40 <= code <= 0x7E or text == " ":
                text = chr(code & 0x1F)
            elif text == "2":
                text = "\0"
            elif "3" <= text <= "7":
                text = chr(code - ord("3") + 0x1B)
            elif text == "8":
                text = "\x7f"
            elif text == "/":
                text = "\x1f"
        return text


def emit(obj: dict[str, Any]) -> None:
    """Write one JSON line on stdout and flush it."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def parse_geometry(text: str, screen_w: int, screen_h: int) -> tuple[int, int, int, int]:
    """Parse ``WxH+X+Y`` (or ``WxH``) into ``(x, y, w, h)``."""
    m = re.fullmatch(r"(\d+)x(\d+)(?:([+-]\d+)([+-]\d+))?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad geometry {text!r}, want WxH+X+Y")
    w, h = int(m.group(1)), int(m.group(2))
    x = int(m.group(3) or 0)
    y = int(m.group(4) or 0)
    if x < 0:
        x += screen_w - w
    if y < 0:
        y += screen_h - h
    return x, y, w, h


class Recorder:
    """The recorder's X state: one focused window and the keyboard map."""

    def __init__(self, args: argparse.Namespace) -> None:
        from Xlib import X, display

        self.display = display.Display()
        self.screen = self.display.screen()
        sw, sh = self.screen.width_in_pixels, self.screen.height_in_pixels
        self.geometry = parse_geometry(args.geometry or f"{sw}x{sh}+0+0", sw, sh)
        self.flash = args.flash
        self.flash_index = 0
        event_mask = (
            X.KeyPressMask
            | X.KeyReleaseMask
            | X.ButtonPressMask
            | X.ButtonReleaseMask
            | X.FocusChangeMask
            | X.StructureNotifyMask
            | X.ExposureMask
        )
        if not args.no_motion:
            event_mask |= X.PointerMotionMask
        self.background = int(FLASH_COLOURS[0] if args.flash else args.background, 16)
        x, y, w, h = self.geometry
        self.window = self.screen.root.create_window(
            x,
            y,
            w,
            h,
            0,
            self.screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=self._pixel(self.background),
            override_redirect=bool(args.override_redirect),
            event_mask=event_mask,
        )
        self.window.set_wm_name("rdesk-test-recorder")
        self.window.set_wm_class("recorder", "RdeskTestRecorder")
        self.window.set_wm_hints(flags=1, input=1)  # InputHint: we want keyboard input
        self.gc = self.window.create_gc(foreground=self._pixel(self.background))
        self.keyboard = KeyboardState(self.display)

    def _pixel(self, rgb: int) -> int:
        visual = next(
            v
            for d in self.screen.allowed_depths
            for v in d.visuals
            if v.visual_id == self.screen.root_visual
        )
        pixel = 0
        for mask, value in zip(
            (visual.red_mask, visual.green_mask, visual.blue_mask),
            ((rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF),
            strict=True,
        ):
            shift = (mask & -mask).bit_length() - 1
            pixel |= ((value * (mask >> shift)) // 255) << shift
        return pixel

    def map_and_focus(self, timeout: float = 10.0) -> None:
        """Map the window, wait until it is viewable and give it the input focus."""
        from Xlib import X

        self.window.map()
        while True:
            event = self.display.next_event()
            if event.type == X.MapNotify and event.window == self.window:
                break
        self.take_focus(timeout)

    def take_focus(self, timeout: float = 10.0) -> None:
        """Set the input focus to the window and wait until the server confirms it."""
        from Xlib import X

        deadline = time.monotonic() + timeout
        while True:
            self.window.set_input_focus(X.RevertToParent, X.CurrentTime)
            self.display.sync()
            if self.display.get_input_focus().focus == self.window:
                return
            if time.monotonic() > deadline:
                raise SystemExit("recorder: could not take the input focus")
            time.sleep(0.02)

    def handle(self, event: Any) -> None:
        """Report one X event."""
        from Xlib import X

        kind = event.type
        synthetic = bool(getattr(event, "send_event", False))
        if kind in (X.KeyPress, X.KeyRelease):
            keysym = self.keyboard.keysym(event.detail, event.state)
            out: dict[str, Any] = {
                "type": "key_press" if kind == X.KeyPress else "key_release",
                "keycode": event.detail,
                "keysym": keysym,
                "keysym_name": keysym_name(keysym),
                "state": event.state,
                "text": self.keyboard.text(keysym, event.state) if kind == X.KeyPress else "",
                "x": event.root_x,
                "y": event.root_y,
                "time": event.time,
                "synthetic": synthetic,
            }
            if kind == X.KeyPress and self.flash:
                out["flash"] = self.next_flash()
            emit(out)
        elif kind in (X.ButtonPress, X.ButtonRelease):
            emit(
                {
                    "type": "button_press" if kind == X.ButtonPress else "button_release",
                    "button": event.detail,
                    "x": event.root_x,
                    "y": event.root_y,
                    "win_x": event.event_x,
                    "win_y": event.event_y,
                    "state": event.state,
                    "time": event.time,
                    "synthetic": synthetic,
                }
            )
        elif kind == X.MotionNotify:
            emit(
                {
                    "type": "motion",
                    "x": event.root_x,
                    "y": event.root_y,
                    "win_x": event.event_x,
                    "win_y": event.event_y,
                    "state": event.state,
                    "time": event.time,
                }
            )
        elif kind in (X.FocusIn, X.FocusOut):
            emit(
                {
                    "type": "focus_in" if kind == X.FocusIn else "focus_out",
                    "mode": event.mode,
                    "detail": event.detail,
                }
            )
        elif kind == X.MappingNotify:
            if event.request == X.MappingKeyboard:
                self.display.refresh_keyboard_mapping(event)
            elif event.request == X.MappingModifier:
                self.keyboard.refresh_modifiers()
            emit({"type": "mapping", "request": event.request})
        elif kind == X.Expose and self.flash:
            self.window.fill_rectangle(self.gc, event.x, event.y, event.width, event.height)

    def next_flash(self) -> str:
        """Fill the window with the next colour, wait for the server, return the colour."""
        self.flash_index = (self.flash_index + 1) % len(FLASH_COLOURS)
        colour = FLASH_COLOURS[self.flash_index]
        self.gc.change(foreground=self._pixel(int(colour, 16)))
        _, _, w, h = self.geometry
        self.window.fill_rectangle(self.gc, 0, 0, w, h)
        self.display.sync()
        return colour


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometry", metavar="WxH+X+Y", help="window geometry (default: screen)")
    parser.add_argument(
        "--override-redirect", action="store_true", help="bypass any window manager"
    )
    parser.add_argument(
        "--flash", action="store_true", help="fill the window with a new colour on each key"
    )
    parser.add_argument("--no-motion", action="store_true", help="do not report pointer motion")
    parser.add_argument(
        "--background", default="303030", metavar="RRGGBB", help="window colour (no --flash)"
    )
    args = parser.parse_args(argv)

    rec = Recorder(args)
    rec.map_and_focus()
    x, y, w, h = rec.geometry
    emit({"type": "ready", "window": rec.window.id, "geometry": [x, y, w, h]})

    stdin = sys.stdin.fileno()
    xfd = rec.display.fileno()
    buf = b""
    while True:
        while rec.display.pending_events():
            rec.handle(rec.display.next_event())
        readable, _, _ = select.select([stdin, xfd], [], [], 1.0)
        if stdin not in readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            command = raw.decode().strip()
            if command == "quit":
                rec.display.close()
                return 0
            if command == "focus":
                rec.take_focus()
    rec.display.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
