"""The browser page's "Resize desktop" (docs/browser.md): in real headless Chromium, with the box
ticked the host's virtual desktop (a real Xvnc) takes the page's screen area, and follows a
viewport change; unticked, a viewport change sends nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_browser import _wait_js, browser, page, page_and_log  # noqa: F401 (fixtures)
from tests.e2e.test_session_resize import CONTROL, _desktop_env, _screen_size, bare_host
from tests.xserver import wait_until

pytestmark = pytest.mark.skipif(shutil.which("Xvnc") is None, reason="needs Xvnc")

_AREA = ("[document.getElementById('screen-area').clientWidth,"
         " document.getElementById('screen-area').clientHeight]")


def test_the_page_resizes_the_desktop(
    tmp_path: Path, page: Any, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    host = bare_host(tmp_path)
    try:
        display, cookie = _desktop_env(tmp_path)
        monkeypatch.setenv("XAUTHORITY", cookie)
        page.goto(f"https://127.0.0.1:{host.port}/")
        page.fill("#password", CONTROL)
        page.click("#connect")
        page.wait_for_selector("body[data-state=active]", state="attached")
        # Off (the default): a viewport change sends nothing.
        page.set_viewport_size({"width": 800, "height": 600})
        page.wait_for_timeout(1000)  # several debounce periods; the count checked is zero
        assert page.evaluate("document.body.dataset.resizeSent") is None
        assert _screen_size(display) == (640, 480)

        page.check("#resize-desktop")
        width, height = page.evaluate(_AREA)
        assert wait_until(lambda: _screen_size(display) == (width, height), 30), (
            _screen_size(display), width, height)
        _wait_js(page, f"document.body.dataset.resizeResult === 'ok {width}x{height}'")

        page.set_viewport_size({"width": 1000, "height": 700})
        width2, height2 = page.evaluate(_AREA)
        assert (width2, height2) != (width, height)
        assert wait_until(lambda: _screen_size(display) == (width2, height2), 30), (
            _screen_size(display), width2, height2)
        # The page's canvas follows: the host sent a screen of the new size.
        _wait_js(page, f"document.getElementById('screen').width === {width2}")
    finally:
        host.stop()
