"""X11 keysyms: text to keysyms, key-combination names to keysyms, keysyms to names.

Keys travel as X11 keysyms (docs/protocol.md, "Input"), the portable standard RFB and noVNC
use. The rules for characters are those of X11's keysymdef.h, appendix A of the X protocol
("KEYSYM Encoding"):

- Latin-1 characters (U+0020..U+007E and U+00A0..U+00FF) are their own keysym;
- every other character is ``0x01000000 + code point`` (the "Unicode keysyms");
- newline is typed as ``Return`` and tab as ``Tab``; other control characters have no keysym
  that types them and are refused.

Stdlib only, pure functions and data.
"""

from __future__ import annotations

__all__ = [
    "KEYSYMS",
    "MODIFIERS",
    "UNICODE_OFFSET",
    "keysym_name",
    "keysym_to_char",
    "parse_combo",
    "text_to_keysyms",
]

#: Unicode keysyms are this plus the code point (keysymdef.h, "Unicode").
UNICODE_OFFSET = 0x01000000
_UNICODE_MAX = 0x0010FFFF

XK_RETURN = 0xFF0D
XK_TAB = 0xFF09

#: Names of common non-character keysyms, as in keysymdef.h without ``XK_``.
KEYSYMS: dict[str, int] = {
    "BackSpace": 0xFF08,
    "Tab": 0xFF09,
    "Linefeed": 0xFF0A,
    "Clear": 0xFF0B,
    "Return": 0xFF0D,
    "Pause": 0xFF13,
    "Scroll_Lock": 0xFF14,
    "Sys_Req": 0xFF15,
    "Escape": 0xFF1B,
    "Multi_key": 0xFF20,
    "Home": 0xFF50,
    "Left": 0xFF51,
    "Up": 0xFF52,
    "Right": 0xFF53,
    "Down": 0xFF54,
    "Page_Up": 0xFF55,
    "Page_Down": 0xFF56,
    "End": 0xFF57,
    "Begin": 0xFF58,
    "Select": 0xFF60,
    "Print": 0xFF61,
    "Execute": 0xFF62,
    "Insert": 0xFF63,
    "Undo": 0xFF65,
    "Redo": 0xFF66,
    "Menu": 0xFF67,
    "Find": 0xFF68,
    "Cancel": 0xFF69,
    "Help": 0xFF6A,
    "Break": 0xFF6B,
    "Mode_switch": 0xFF7E,
    "Num_Lock": 0xFF7F,
    "KP_Space": 0xFF80,
    "KP_Tab": 0xFF89,
    "KP_Enter": 0xFF8D,
    "KP_Home": 0xFF95,
    "KP_Left": 0xFF96,
    "KP_Up": 0xFF97,
    "KP_Right": 0xFF98,
    "KP_Down": 0xFF99,
    "KP_Page_Up": 0xFF9A,
    "KP_Page_Down": 0xFF9B,
    "KP_End": 0xFF9C,
    "KP_Begin": 0xFF9D,
    "KP_Insert": 0xFF9E,
    "KP_Delete": 0xFF9F,
    "KP_Multiply": 0xFFAA,
    "KP_Add": 0xFFAB,
    "KP_Separator": 0xFFAC,
    "KP_Subtract": 0xFFAD,
    "KP_Decimal": 0xFFAE,
    "KP_Divide": 0xFFAF,
    **{f"KP_{n}": 0xFFB0 + n for n in range(10)},
    "KP_Equal": 0xFFBD,
    **{f"F{n}": 0xFFBE + n - 1 for n in range(1, 36)},
    "Shift_L": 0xFFE1,
    "Shift_R": 0xFFE2,
    "Control_L": 0xFFE3,
    "Control_R": 0xFFE4,
    "Caps_Lock": 0xFFE5,
    "Shift_Lock": 0xFFE6,
    "Meta_L": 0xFFE7,
    "Meta_R": 0xFFE8,
    "Alt_L": 0xFFE9,
    "Alt_R": 0xFFEA,
    "Super_L": 0xFFEB,
    "Super_R": 0xFFEC,
    "Hyper_L": 0xFFED,
    "Hyper_R": 0xFFEE,
    "ISO_Level3_Shift": 0xFE03,
    "ISO_Left_Tab": 0xFE20,
    "Delete": 0xFFFF,
    # Latin-1 punctuation (the letters and digits are named by themselves).
    "space": 0x20,
    "exclam": 0x21,
    "quotedbl": 0x22,
    "numbersign": 0x23,
    "dollar": 0x24,
    "percent": 0x25,
    "ampersand": 0x26,
    "apostrophe": 0x27,
    "parenleft": 0x28,
    "parenright": 0x29,
    "asterisk": 0x2A,
    "plus": 0x2B,
    "comma": 0x2C,
    "minus": 0x2D,
    "period": 0x2E,
    "slash": 0x2F,
    "colon": 0x3A,
    "semicolon": 0x3B,
    "less": 0x3C,
    "equal": 0x3D,
    "greater": 0x3E,
    "question": 0x3F,
    "at": 0x40,
    "bracketleft": 0x5B,
    "backslash": 0x5C,
    "bracketright": 0x5D,
    "asciicircum": 0x5E,
    "underscore": 0x5F,
    "grave": 0x60,
    "braceleft": 0x7B,
    "bar": 0x7C,
    "braceright": 0x7D,
    "asciitilde": 0x7E,
    # Media keys (XF86keysym.h).
    "XF86AudioLowerVolume": 0x1008FF11,
    "XF86AudioMute": 0x1008FF12,
    "XF86AudioRaiseVolume": 0x1008FF13,
    "XF86AudioPlay": 0x1008FF14,
    "XF86AudioStop": 0x1008FF15,
    "XF86AudioPrev": 0x1008FF16,
    "XF86AudioNext": 0x1008FF17,
}

#: Friendly, case-insensitive names accepted by :func:`parse_combo` besides :data:`KEYSYMS`.
_ALIASES: dict[str, int] = {
    "ctrl": KEYSYMS["Control_L"],
    "control": KEYSYMS["Control_L"],
    "alt": KEYSYMS["Alt_L"],
    "shift": KEYSYMS["Shift_L"],
    "super": KEYSYMS["Super_L"],
    "win": KEYSYMS["Super_L"],
    "meta": KEYSYMS["Super_L"],
    "altgr": KEYSYMS["ISO_Level3_Shift"],
    "enter": KEYSYMS["Return"],
    "esc": KEYSYMS["Escape"],
    "del": KEYSYMS["Delete"],
    "ins": KEYSYMS["Insert"],
    "pgup": KEYSYMS["Page_Up"],
    "pageup": KEYSYMS["Page_Up"],
    "prior": KEYSYMS["Page_Up"],
    "pgdn": KEYSYMS["Page_Down"],
    "pagedown": KEYSYMS["Page_Down"],
    "next": KEYSYMS["Page_Down"],
}

#: The modifier keysyms (for logs and for the injector's shift handling).
MODIFIERS: frozenset[int] = frozenset(
    KEYSYMS[n]
    for n in (
        "Shift_L", "Shift_R", "Control_L", "Control_R", "Caps_Lock", "Shift_Lock", "Meta_L",
        "Meta_R", "Alt_L", "Alt_R", "Super_L", "Super_R", "Hyper_L", "Hyper_R",
        "ISO_Level3_Shift", "Mode_switch", "Num_Lock",
    )
)

_BY_LOWER: dict[str, int] = {name.lower(): keysym for name, keysym in KEYSYMS.items()}
_BY_LOWER.update(_ALIASES)
_NAMES: dict[int, str] = {}
for _name, _keysym in KEYSYMS.items():
    _NAMES.setdefault(_keysym, _name)
del _name, _keysym


def char_to_keysym(ch: str) -> int:
    """The keysym that types the one character ``ch``; ``ValueError`` if there is none."""
    code = ord(ch)
    if ch == "\n":
        return XK_RETURN
    if ch == "\t":
        return XK_TAB
    if code < 0x20 or 0x7F <= code <= 0x9F:
        raise ValueError(f"cannot type the control character U+{code:04X}")
    if 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"cannot type the lone surrogate U+{code:04X}")
    if code <= 0xFF:
        return code
    return UNICODE_OFFSET + code


def text_to_keysyms(text: str) -> list[int]:
    """The keysyms that type ``text``, one per character (``"\\n"`` is Return).

    Raises ``ValueError`` (one line) for a control character other than newline and tab.
    """
    return [char_to_keysym(ch) for ch in text]


def keysym_to_char(keysym: int) -> str | None:
    """The character a keysym types (Return is ``"\\n"``, Tab ``"\\t"``), or ``None``."""
    if keysym == XK_RETURN:
        return "\n"
    if keysym == XK_TAB:
        return "\t"
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if UNICODE_OFFSET + 0x100 <= keysym <= UNICODE_OFFSET + _UNICODE_MAX:
        code = keysym - UNICODE_OFFSET
        if 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code)
    return None


def _key(name: str) -> int:
    if len(name) == 1:
        return char_to_keysym(name)
    keysym = KEYSYMS.get(name) or _BY_LOWER.get(name.lower())
    if keysym is not None:
        return keysym
    lowered = name.lower()
    if lowered.startswith("u") and 5 <= len(name) <= 7:  # U20AC, as X names Unicode keysyms
        try:
            code = int(name[1:], 16)
        except ValueError:
            pass
        else:
            if 0x20 <= code <= _UNICODE_MAX:
                return char_to_keysym(chr(code))
    if lowered.startswith("0x"):
        try:
            value = int(name, 16)
        except ValueError:
            pass
        else:
            if 1 <= value <= 0x1FFFFFFF:
                return value
    raise ValueError(
        f"unknown key {name!r}: use a character, a name such as ctrl, alt, shift, super, "
        "Return, Tab, Escape, F1..F35, Left, Page_Up, an X keysym name, U20AC or 0xff0d"
    )


def parse_combo(combo: str) -> list[int]:
    """Keysyms of a combination like ``"ctrl+alt+t"``, in the order they are pressed.

    Names are case-insensitive (``ctrl``/``control``, ``alt``, ``shift``, ``super``/``win``/
    ``meta``, ``Return``/``enter``, ``Escape``/``esc``, ``F1``..``F35``, any name in
    :data:`KEYSYMS`); a single character stands for itself, case kept (``ctrl+A`` is
    Control with the keysym ``A``). ``+`` alone, or last after ``+``, is the plus key.
    Raises ``ValueError`` with a one-line message.
    """
    if not combo:
        raise ValueError("empty key combination")
    parts: list[str]
    if combo == "+":
        parts = ["+"]
    elif combo.endswith("++"):
        parts = [*combo[:-2].split("+"), "+"]
    else:
        parts = combo.split("+")
    if any(not part for part in parts):
        raise ValueError(f"bad key combination {combo!r}: empty key name")
    return [_key(part.strip() if len(part) > 1 else part) for part in parts]


def keysym_name(keysym: int) -> str:
    """A readable name for logs: ``"Return"``, ``"a"``, ``"U20AC"``, or ``"0x1234"``."""
    name = _NAMES.get(keysym)
    if name is not None:
        return name
    ch = keysym_to_char(keysym)
    if ch is not None and ch.isprintable():
        return ch if keysym < 0x100 else f"U{keysym - UNICODE_OFFSET:04X}"
    return f"0x{keysym:x}"
