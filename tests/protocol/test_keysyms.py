"""rdesk.protocol.keysyms: characters and key names to X11 keysyms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdesk.protocol.keysyms import (
    KEYSYMS,
    keysym_name,
    keysym_to_char,
    parse_combo,
    text_to_keysyms,
)

# Every character text_to_keysyms accepts: no C0/C1 control characters but \n and \t,
# no lone surrogates.
typable = st.characters(
    exclude_categories=["Cs"],
    exclude_characters="".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]),
) | st.sampled_from("\n\t")


def test_ascii_and_latin1_are_their_own_keysym() -> None:
    assert text_to_keysyms("Az~ ") == [0x41, 0x7A, 0x7E, 0x20]
    assert text_to_keysyms("é\xa0ÿ") == [0xE9, 0xA0, 0xFF]


def test_other_characters_are_unicode_keysyms() -> None:
    assert text_to_keysyms("€✓😀") == [0x010020AC, 0x01002713, 0x0101F600]


def test_newline_and_tab() -> None:
    assert text_to_keysyms("a\nb\t") == [0x61, 0xFF0D, 0x62, 0xFF09]


@pytest.mark.parametrize("ch", ["\r", "\x00", "\x1b", "\x7f", "\x85", "\ud800"])
def test_control_characters_refused(ch: str) -> None:
    with pytest.raises(ValueError) as info:
        text_to_keysyms("a" + ch)
    assert "\n" not in str(info.value)


@given(st.text(typable, max_size=50))
def test_text_round_trip(text: str) -> None:
    keysyms = text_to_keysyms(text)
    assert len(keysyms) == len(text)
    assert all(1 <= k <= 0x1FFFFFFF for k in keysyms)
    assert "".join(keysym_to_char(k) or "?" for k in keysyms) == text


@pytest.mark.parametrize(
    ("combo", "names"),
    [
        ("ctrl+alt+t", ["Control_L", "Alt_L", "t"]),
        ("Control+A", ["Control_L", "A"]),
        ("shift+Tab", ["Shift_L", "Tab"]),
        ("SHIFT+tab", ["Shift_L", "Tab"]),
        ("super", ["Super_L"]),
        ("win+e", ["Super_L", "e"]),
        ("meta", ["Super_L"]),
        ("Return", ["Return"]),
        ("enter", ["Return"]),
        ("esc", ["Escape"]),
        ("BackSpace", ["BackSpace"]),
        ("delete", ["Delete"]),
        ("Home", ["Home"]),
        ("end", ["End"]),
        ("Page_Up", ["Page_Up"]),
        ("page_down", ["Page_Down"]),
        ("Left", ["Left"]),
        ("up", ["Up"]),
        ("F1", ["F1"]),
        ("f24", ["F24"]),
        ("space", ["space"]),
        ("Insert", ["Insert"]),
        ("ctrl++", ["Control_L", "plus"]),
        ("+", ["plus"]),
        ("ctrl+KP_Enter", ["Control_L", "KP_Enter"]),
        ("XF86AudioMute", ["XF86AudioMute"]),
    ],
)
def test_parse_combo(combo: str, names: list[str]) -> None:
    assert [keysym_name(k) for k in parse_combo(combo)] == names


def test_parse_combo_characters_and_codes() -> None:
    assert parse_combo("é") == [0xE9]
    assert parse_combo("U20AC") == [0x010020AC]
    assert parse_combo("0xff0d") == [0xFF0D]
    assert parse_combo("F1") == [KEYSYMS["F1"]]


@pytest.mark.parametrize("combo", ["", "ctrl+", "+ctrl", "ctrl++a", "nosuchkey", "ctrl+foo"])
def test_parse_combo_refuses(combo: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_combo(combo)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300


def test_keysym_names() -> None:
    assert keysym_name(0xFF0D) == "Return"
    assert keysym_name(0x61) == "a"
    assert keysym_name(0x010020AC) == "U20AC"
    assert keysym_name(0x12345) == "0x12345"
