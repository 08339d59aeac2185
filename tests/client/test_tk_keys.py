"""Tk key events to X11 keysyms."""

from __future__ import annotations

import pytest

from rdesk.client.tk.keys import tk_to_keysym
from rdesk.protocol.keysyms import KEYSYMS


@pytest.mark.parametrize(
    ("keysym", "num", "char", "expected"),
    [
        ("a", 0x61, "a", 0x61),
        ("A", 0x41, "A", 0x41),
        ("Return", 0xFF0D, "\r", 0xFF0D),
        ("Shift_L", 0xFFE1, "", 0xFFE1),
        ("Control_R", 0xFFE4, "", 0xFFE4),
        ("F12", 0xFFC9, "", 0xFFC9),
        ("eacute", 0xE9, "é", 0xE9),
        ("EuroSign", 0x20AC, "€", 0x20AC),  # X11's legacy keysym is passed through
        ("??", 0, "", None),
    ],
)
def test_x11_uses_keysym_num(keysym: str, num: int, char: str, expected: int | None) -> None:
    assert tk_to_keysym(keysym, num, char, x11=True) == expected


@pytest.mark.parametrize(
    ("keysym", "char", "expected"),
    [
        ("Prior", "", KEYSYMS["Page_Up"]),
        ("Next", "", KEYSYMS["Page_Down"]),
        ("Win_L", "", KEYSYMS["Super_L"]),
        ("App", "", KEYSYMS["Menu"]),
        ("Option_L", "", KEYSYMS["Alt_L"]),
        ("Return", "\r", KEYSYMS["Return"]),
        ("F1", "", KEYSYMS["F1"]),
        ("q", "q", ord("q")),
        ("Q", "Q", ord("Q")),
        ("oe", "œ", 0x01000000 + ord("œ")),
        ("space", " ", 0x20),
    ],
)
def test_other_platforms_use_names_then_characters(keysym: str, char: str, expected: int) -> None:
    assert tk_to_keysym(keysym, 0, char, x11=False) == expected


def test_nothing_to_send() -> None:
    assert tk_to_keysym("??", 0, "", x11=False) is None
    assert tk_to_keysym("??", 0xFFFFFF, "", x11=True) is None


def test_x11_keysym_num_matches_tk_on_a_real_display(tk_display: str) -> None:
    """Tk on X11 reports X keysyms as keysym_num (checked against Tk's own name table)."""
    tkinter = pytest.importorskip("tkinter")
    root = tkinter.Tk(screenName=tk_display)
    try:
        if root.tk.call("tk", "windowingsystem") != "x11":
            pytest.skip("not X11")
        for name in ("Return", "F5", "Shift_L", "Page_Up", "KP_Enter", "a", "Escape"):
            # `event generate` fills keysym_num from the name the way a real key event does.
            seen: list[int] = []
            root.bind("<Key>", lambda e, s=seen: s.append(int(e.keysym_num)))
            root.focus_force()
            root.update()
            root.event_generate("<KeyPress>", keysym=name, when="now")
            root.update()
            assert seen, name
            assert seen[-1] == KEYSYMS.get(name, ord(name[0]) if len(name) == 1 else -1)
    finally:
        root.destroy()
