"""Issue 15, "Every key", in the browser: input methods, insertText and AltGr.

Debian's headless Chromium against a real host on Xvfb over real TLS; a real X client
(:class:`tests.xserver.Recorder`) reports the key events the host's injector produced. The
input method is Chromium's own composition machinery driven over CDP
(``Input.imeSetComposition`` / ``Input.insertText``), the keys are trusted CDP key events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e import test_every_key as every_key
from tests.e2e.conftest import RunningHost
from tests.e2e.test_browser import PageLog, _client_point
from tests.e2e.test_every_key import _presses, _start
from tests.xserver import Recorder, Xvfb

# The browser fixtures and skip marks of test_every_key.py (one Chromium, a context per test).
browser = every_key.browser
page_and_log = every_key.page_and_log
page = every_key.page
pytestmark = every_key.pytestmark

CONTROL_L, SHIFT_L = 0xFFE3, 0xFFE1
CONTROL_MASK, MOD1_MASK = 0x4, 0x8
UNICODE = 0x01000000


def _keys(cdp: Any, *events: dict[str, Any]) -> None:
    for event in events:
        cdp.send("Input.dispatchKeyEvent", event)


@pytest.fixture
def typing(xvfb: Xvfb, host_factory: Callable[..., RunningHost],
           page: Any) -> Iterator[tuple[Any, Recorder, Any]]:
    """The page logged in, the recorder focused and idle, and a CDP session on the page."""
    with Recorder(xvfb.display) as recorder:
        _start(xvfb, host_factory, page, recorder)
        cdp = page.context.new_cdp_session(page)
        recorder.wait_idle()
        yield page, recorder, cdp


def test_composed_text_reaches_the_host_once(
    typing: tuple[Any, Recorder, Any], page_and_log: tuple[Any, PageLog]
) -> None:
    page, recorder, cdp = typing
    log = page_and_log[1]
    assert page.evaluate("document.activeElement.id") == "keyboard"
    start = len(recorder.events())
    # Pinyin "ni hao" → 你好: the keys go to the input method (key "Process", 229), the
    # composition grows, and the commit is the only thing the host may see.
    _keys(cdp, {"type": "rawKeyDown", "key": "Process", "code": "KeyN",
                "windowsVirtualKeyCode": 229})
    cdp.send("Input.imeSetComposition", {"text": "n", "selectionStart": 1, "selectionEnd": 1})
    _keys(cdp, {"type": "keyUp", "key": "n", "code": "KeyN"},
          {"type": "rawKeyDown", "key": "Process", "code": "KeyI",
           "windowsVirtualKeyCode": 229})
    cdp.send("Input.imeSetComposition", {"text": "nihao", "selectionStart": 5,
                                         "selectionEnd": 5})
    _keys(cdp, {"type": "keyUp", "key": "i", "code": "KeyI"})
    cdp.send("Input.insertText", {"text": "你好"})  # commits the composition
    assert recorder.wait_for_text("你好").endswith("你好")
    # Text inserted without keys (on-screen keyboards, dictation): Playwright's insertText.
    page.keyboard.insert_text("日本")
    recorder.wait_for_text("日本")
    # A dead key composed by the input method (as macOS does): "^" shown while composing,
    # the "e" key is part of the composition, "ê" is committed.
    _keys(cdp, {"type": "rawKeyDown", "key": "Dead", "code": "BracketLeft"})
    cdp.send("Input.imeSetComposition", {"text": "^", "selectionStart": 1, "selectionEnd": 1})
    _keys(cdp, {"type": "keyUp", "key": "Dead", "code": "BracketLeft"},
          {"type": "rawKeyDown", "key": "e", "code": "KeyE"})
    cdp.send("Input.insertText", {"text": "ê"})
    _keys(cdp, {"type": "keyUp", "key": "e", "code": "KeyE"})
    page.keyboard.type("z")  # an ordinary key after it all
    recorder.wait_for_text("z")
    recorder.wait_idle()
    assert _presses(recorder, start) == [UNICODE + ord(c) for c in "你好日本"] + [0xEA, 0x7A]
    assert not recorder.held_keys()
    # The field never keeps text (a later composition must not see the last one's).
    assert page.evaluate("document.getElementById('keyboard').value") == ""
    assert not log.errors()


def _preedit(page: Any) -> dict[str, Any]:
    return page.evaluate("""() => {
        const e = document.getElementById('preedit'), r = e.getBoundingClientRect();
        return {hidden: e.hidden, text: e.textContent, left: r.left, top: r.top,
                shown: !e.hidden && r.width > 0 && getComputedStyle(e).display !== 'none'};
    }""")


def test_composing_text_shows_over_the_desktop_until_committed(
    typing: tuple[Any, Recorder, Any], page_and_log: tuple[Any, PageLog]
) -> None:
    page, recorder, cdp = typing
    log = page_and_log[1]
    x0, y0, w, h = recorder.geometry
    click = _client_point(page, x0 + w // 2, y0 + h // 2)  # where _start clicked
    assert _preedit(page)["hidden"]
    start = len(recorder.events())
    _keys(cdp, {"type": "rawKeyDown", "key": "Process", "code": "KeyN",
                "windowsVirtualKeyCode": 229})
    cdp.send("Input.imeSetComposition", {"text": "n", "selectionStart": 1, "selectionEnd": 1})
    assert _preedit(page)["text"] == "n"
    cdp.send("Input.imeSetComposition", {"text": "nihao", "selectionStart": 5,
                                         "selectionEnd": 5})
    shown = _preedit(page)
    assert shown["shown"] and shown["text"] == "nihao", shown
    # Just below the pointer's last place (the click), not at the page's corner.
    assert abs(shown["left"] - click[0]) <= 2 and 0 < shown["top"] - click[1] <= 30, (shown, click)
    recorder.wait_idle()
    assert _presses(recorder, start) == [], "nothing is sent before the commit"
    cdp.send("Input.insertText", {"text": "你好"})  # commits the composition
    assert recorder.wait_for_text("你好").endswith("你好")
    assert _preedit(page) | {"left": 0, "top": 0} == {
        "hidden": True, "text": "", "left": 0, "top": 0, "shown": False}
    # A composition cancelled (emptied) goes without a trace, on the page and on the host.
    cdp.send("Input.imeSetComposition", {"text": "abc", "selectionStart": 3, "selectionEnd": 3})
    assert _preedit(page)["text"] == "abc"
    cdp.send("Input.imeSetComposition", {"text": "", "selectionStart": 0, "selectionEnd": 0})
    assert _preedit(page)["hidden"]
    page.keyboard.type("z")
    recorder.wait_for_text("z")
    recorder.wait_idle()
    assert _presses(recorder, start) == [UNICODE + ord(c) for c in "你好"] + [0x7A]
    assert not log.errors()


def test_altgr_characters_arrive_without_ctrl_alt(typing: tuple[Any, Recorder, Any]) -> None:
    _, recorder, cdp = typing
    start = len(recorder.events())
    # Windows, German layout, AltGr+Q: a fake ControlLeft and AltRight "AltGraph" with the
    # same timestamp, then "@" with Ctrl and Alt set, then the releases.
    t = time.time()
    ctrl_alt = 2 | 1
    _keys(cdp,
          {"type": "rawKeyDown", "key": "Control", "code": "ControlLeft",
           "windowsVirtualKeyCode": 17, "modifiers": 2, "timestamp": t},
          {"type": "rawKeyDown", "key": "AltGraph", "code": "AltRight",
           "windowsVirtualKeyCode": 18, "modifiers": ctrl_alt, "timestamp": t},
          {"type": "keyDown", "key": "@", "code": "KeyQ", "text": "@",
           "windowsVirtualKeyCode": 81, "modifiers": ctrl_alt, "timestamp": t + 0.2},
          {"type": "keyUp", "key": "@", "code": "KeyQ", "modifiers": ctrl_alt},
          {"type": "keyUp", "key": "Control", "code": "ControlLeft", "modifiers": 1},
          {"type": "keyUp", "key": "AltGraph", "code": "AltRight"})
    # Linux, German layout, AltGr+E: AltRight "AltGraph", then "€".
    _keys(cdp,
          {"type": "rawKeyDown", "key": "AltGraph", "code": "AltRight"},
          {"type": "keyDown", "key": "€", "code": "KeyE", "text": "€"},
          {"type": "keyUp", "key": "€", "code": "KeyE"},
          {"type": "keyUp", "key": "AltGraph", "code": "AltRight"})
    assert recorder.wait_for_text("@€").endswith("@€")
    recorder.wait_idle()
    # (The host's injector adds the Shift its own US layout needs for "@".)
    presses = [e for e in recorder.events()[start:]
               if e["type"] == "key_press" and e["keysym"] != SHIFT_L]
    assert [e["keysym"] for e in presses] == [0x40, UNICODE + 0x20AC]
    assert all(not e["state"] & (CONTROL_MASK | MOD1_MASK) for e in presses), presses
    assert not recorder.held_keys()
    # A real Ctrl still works, sent before its key (held back only until the next event).
    start = len(recorder.events())
    _keys(cdp,
          {"type": "rawKeyDown", "key": "Control", "code": "ControlLeft",
           "windowsVirtualKeyCode": 17, "modifiers": 2, "timestamp": t + 1},
          {"type": "rawKeyDown", "key": "a", "code": "KeyA", "windowsVirtualKeyCode": 65,
           "modifiers": 2, "timestamp": t + 1.1},
          {"type": "keyUp", "key": "a", "code": "KeyA", "modifiers": 2},
          {"type": "keyUp", "key": "Control", "code": "ControlLeft"})
    recorder.wait_for(lambda e: e["type"] == "key_release" and e["keysym"] == CONTROL_L,
                      start=start)
    presses = [e for e in recorder.events()[start:] if e["type"] == "key_press"]
    assert [e["keysym"] for e in presses] == [CONTROL_L, 0x61]
    assert presses[1]["state"] & CONTROL_MASK
    recorder.wait_idle()
    assert not recorder.held_keys()
