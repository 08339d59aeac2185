"""Issue 15, "Every key", in the browser: the key bar, characters off the US layout, dead keys.

Debian's headless Chromium against a real host on Xvfb over real TLS, with a real X client
(:class:`tests.xserver.Recorder`) reporting the key events the host's injector produced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e import test_browser as pages
from tests.e2e.conftest import RunningHost
from tests.e2e.test_browser import CHROMIUM, HAVE_INJECTOR, _client_point, _login, _wait_active
from tests.xserver import Recorder, Xvfb

# The browser fixtures of test_browser.py: one headless Chromium, a fresh context per test.
browser = pages.browser
page_and_log = pages.page_and_log
page = pages.page

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing"),
    pytest.mark.skipif(not HAVE_INJECTOR, reason="needs rdesk.host.input.inject"),
]

CONTROL_L, ALT_L, DELETE, TAB, SUPER_L, ESCAPE, F5 = (
    0xFFE3, 0xFFE9, 0xFFFF, 0xFF09, 0xFFEB, 0xFF1B, 0xFFC2,
)


def _start(xvfb: Xvfb, host_factory: Callable[..., RunningHost], page: Any,
           recorder: Recorder) -> None:
    """Log in and give the recorder the X focus with a click in it."""
    from rdesk.host.input.inject import PynputInjector

    host = host_factory(xvfb.display, injector=lambda d: PynputInjector(d))
    _login(page, host)
    _wait_active(page)
    x0, y0, w, h = recorder.geometry
    page.mouse.click(*_client_point(page, x0 + w // 2, y0 + h // 2))
    recorder.wait_for(lambda e: e["type"] == "button_release" and e["button"] == 1)


def _released(keysym: int) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "key_release" and e["keysym"] == keysym


def _presses(recorder: Recorder, start: int) -> list[int]:
    return [e["keysym"] for e in recorder.events()[start:] if e["type"] == "key_press"]


def test_key_bar_chords_reach_an_x_client(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], page: Any
) -> None:
    with Recorder(xvfb.display) as recorder:
        _start(xvfb, host_factory, page, recorder)
        for name, chord in (("ctrl-alt-del", [CONTROL_L, ALT_L, DELETE]),
                            ("alt-tab", [ALT_L, TAB]), ("super", [SUPER_L]),
                            ("esc", [ESCAPE]), ("tab", [TAB])):
            recorder.wait_idle()
            start = len(recorder.events())
            page.click(f"#keybar button[data-keys={name}]")
            recorder.wait_for(_released(chord[0]), start=start)
            assert _presses(recorder, start) == chord, name
            # Pressed in order, released in reverse: the last key down is the first key up.
            releases = [e["keysym"] for e in recorder.events()[start:]
                        if e["type"] == "key_release"]
            assert releases == chord[::-1], name
        start = len(recorder.events())
        page.select_option("#fkeys", "f5")
        recorder.wait_for(lambda e: e["type"] == "key_release" and e["keysym"] == F5, start=start)
        assert _presses(recorder, start) == [F5]
        assert page.evaluate("document.getElementById('fkeys').value") == ""
        # The canvas has the focus back: typing goes on reaching the host.
        page.keyboard.type("ok")
        recorder.wait_for_text("ok")
        recorder.wait_idle()
        assert not recorder.held_keys()


def test_characters_off_the_us_layout_and_dead_keys(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], page: Any
) -> None:
    with Recorder(xvfb.display) as recorder:
        _start(xvfb, host_factory, page, recorder)
        # Trusted key events as Chromium reports them with a French and a German layout: "é"
        # on the US "2" key, "ß" on the US "-" key. KeyboardEvent.key carries the character.
        cdp = page.context.new_cdp_session(page)
        for event in (
            {"type": "keyDown", "key": "é", "code": "Digit2", "text": "é"},
            {"type": "keyUp", "key": "é", "code": "Digit2"},
            {"type": "keyDown", "key": "ß", "code": "Minus", "text": "ß"},
            {"type": "keyUp", "key": "ß", "code": "Minus"},
        ):
            cdp.send("Input.dispatchKeyEvent", event)
        assert recorder.wait_for_text("éß").endswith("éß")
        # A French dead circumflex then "e", as Chromium on Linux reports it: a "Dead" keydown
        # and keyup, then the composed character on the next key. Only "ê" may reach the host.
        for event in (
            {"type": "rawKeyDown", "key": "Dead", "code": "BracketLeft"},
            {"type": "keyUp", "key": "Dead", "code": "BracketLeft"},
            {"type": "keyDown", "key": "ê", "code": "KeyE", "text": "ê"},
            {"type": "keyUp", "key": "e", "code": "KeyE"},
        ):
            cdp.send("Input.dispatchKeyEvent", event)
        page.keyboard.type("!")
        typed = recorder.wait_for_text("!")
        assert typed.endswith("éßê!"), typed
        recorder.wait_idle()
        assert not recorder.held_keys()
