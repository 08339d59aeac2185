"""Tk key events to X11 keysyms, the protocol's key codes (docs/protocol.md, "Input").

On X11, Tk's ``event.keysym_num`` *is* the X keysym (Tk calls ``XLookupKeysym``), so it is
sent as it is. Elsewhere (Windows, macOS) Tk names keys mostly with X keysym names, with a
few of its own (``Prior``, ``Win_L``, ``App``, ``Option_L``); those names are looked up, and
a key that types one character falls back to that character's keysym.

Stdlib only: no tkinter import, so it is unit-testable without a display.
"""

from __future__ import annotations

from rdesk.protocol.keysyms import KEYSYMS, char_to_keysym

__all__ = ["TK_ALIASES", "tk_to_keysym"]

#: Tk key names that are not X keysym names, on any platform.
TK_ALIASES: dict[str, str] = {
    "Prior": "Page_Up",
    "Next": "Page_Down",
    "KP_Prior": "KP_Page_Up",
    "KP_Next": "KP_Page_Down",
    "Win_L": "Super_L",
    "Win_R": "Super_R",
    "App": "Menu",
    "Option_L": "Alt_L",
    "Option_R": "Alt_R",
    "Command_L": "Meta_L",
    "Command_R": "Meta_R",
    "Cmd_L": "Meta_L",
    "Cmd_R": "Meta_R",
    "Alt": "Alt_L",
    "Control": "Control_L",
    "Shift": "Shift_L",
}

#: Keysym values that mean "no keysym" (``NoSymbol`` and ``VoidSymbol``).
_NO_SYMBOL = (0, 0xFFFFFF)


def tk_to_keysym(keysym: str, keysym_num: int, char: str, *, x11: bool) -> int | None:
    """The X11 keysym of a Tk key event, or ``None`` when it has none.

    ``keysym``, ``keysym_num`` and ``char`` are the event's fields; ``x11`` says whether Tk
    runs on X11 (``tk windowingsystem`` is ``x11``), where ``keysym_num`` is authoritative.
    """
    if x11 and keysym_num not in _NO_SYMBOL and 0 < keysym_num <= 0x1FFFFFFF:
        return keysym_num
    name = TK_ALIASES.get(keysym, keysym)
    value = KEYSYMS.get(name)
    if value is not None:
        return value
    for text in (char, name):
        if len(text) == 1:
            try:
                return char_to_keysym(text)
            except ValueError:
                continue
    if not x11 and keysym_num not in _NO_SYMBOL and 0 < keysym_num <= 0x1FFFFFFF:
        # Tk's other ports also report X keysym values for most keys.
        return keysym_num
    return None
