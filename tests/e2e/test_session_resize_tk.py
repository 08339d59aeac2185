"""The desktop window's "resize desktop to window" (``rdesk connect --resize-desktop``; F8):
the host's virtual desktop (a real Xvnc) takes the window's size, and follows when the window
is resized. The window runs on its own Xvfb without a window manager (tests/e2e/test_window.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_session_resize import _desktop_env, _screen_size, bare_host
from tests.e2e.test_window import Viewer
from tests.xserver import Xvfb, run_xdotool, wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("Xvnc") is None or shutil.which("xdotool") is None,
    reason="needs Xvnc (tigervnc-standalone-server) and xdotool",
)


@pytest.fixture
def viewers() -> Iterator[list[Viewer]]:
    made: list[Viewer] = []
    yield made
    for viewer in made:
        viewer.close()


def test_the_window_resizes_the_desktop(
    tmp_path: Path, xvfb_factory: Callable[..., Xvfb], viewers: list[Viewer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = bare_host(tmp_path)
    try:
        display, cookie = _desktop_env(tmp_path)
        screen = xvfb_factory(1280, 1024).display  # the viewer's own display, no WM
        viewer = Viewer(screen, tmp_path / "viewer", [
            host.url, "--fingerprint", host.fingerprint,
            "--password-file", str(tmp_path / "control"), "--resize-desktop"])
        viewers.append(viewer)
        window = viewer.wait_title(r"\(control\)")
        run_xdotool(screen, "windowsize", str(window), "900", "700")
        monkeypatch.setenv("XAUTHORITY", cookie)
        # The canvas fills the window (no border, no scrollbars in fit mode): the desktop
        # becomes exactly the window's size.
        assert wait_until(lambda: _screen_size(display) == (900, 700), 30), _screen_size(display)
        run_xdotool(screen, "windowsize", str(window), "1000", "560")
        assert wait_until(lambda: _screen_size(display) == (1000, 560), 30), _screen_size(display)
    finally:
        host.stop()
