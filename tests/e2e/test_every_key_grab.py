"""Issue 15: the Tk viewer's keyboard grab, on Xvfb with a real window manager.

Openbox runs on the viewer's display and binds Alt+Tab (its default ``rc.xml``). While the
viewer window has the focus its keyboard grab overrides that binding, so Alt+Tab reaches the
host's X client; once the F8 menu has released the grab, openbox takes Alt+Tab again and the
host sees the Alt but no Tab (which is what makes the first check able to fail), until a click
in the window takes the keyboard back.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e import test_window as windows
from tests.e2e.test_window import Setup, _click_at, _focus
from tests.xserver import Recorder, run_xdotool, wait_until

setup = windows.setup

pytestmark = pytest.mark.skipif(
    shutil.which("openbox") is None or shutil.which("xprop") is None,
    reason="needs Debian's openbox and xprop",
)

TAB = 0xFF09
ALT_L = 0xFFE9


@pytest.fixture
def wm(setup: Setup) -> Iterator[subprocess.Popen[bytes]]:
    display = setup.view_x.display
    proc = subprocess.Popen(["openbox"], env={"DISPLAY": display, "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def managed() -> bool:
        out = subprocess.run(["xprop", "-display", display, "-root", "_NET_SUPPORTING_WM_CHECK"],
                             capture_output=True, text=True)
        return "window id" in out.stdout

    try:
        assert wait_until(managed, 20, interval=0.2), "openbox did not start"
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def _presses(recorder: Recorder, start: int) -> list[int]:
    return [e["keysym"] for e in recorder.events()[start:] if e["type"] == "key_press"]


def _alt_tab_then_x(display: str, recorder: Recorder) -> int:
    """Type Alt+Tab then x on the viewer's display; the event index they start at."""
    recorder.wait_idle()
    start = len(recorder.events())
    run_xdotool(display, "key", "--delay", "30", "alt+Tab", "x")
    recorder.wait_for(lambda e: e["type"] == "key_release" and e["keysym_name"] == "x",
                      start=start, timeout=20)
    return start


def test_alt_tab_reaches_the_host_until_the_menu_releases_the_grab(
    setup: Setup, wm: subprocess.Popen[bytes]
) -> None:
    with Recorder(setup.host_x.display) as recorder:
        viewer = setup.viewer("--scale", "1")
        viewer.wait_title(r"\(control\)")
        _focus(viewer)
        _click_at(viewer, 60, 60)
        run_xdotool(viewer.display, "key", "--delay", "30", "alt+Tab")
        press = recorder.wait_for(lambda e: e["type"] == "key_press" and e["keysym"] == TAB,
                                  timeout=20)
        assert press["state"] & 8, press  # Mod1 (Alt) held with it
        assert wait_until(lambda: not recorder.held_keys(), 10), recorder.held_keys()

        # The F8 menu releases the grab: the window manager has Alt+Tab again.
        run_xdotool(viewer.display, "mousemove", "--sync", "300", "300")
        run_xdotool(viewer.display, "key", "F8")
        start = _alt_tab_then_x(viewer.display, recorder)
        assert _presses(recorder, start) == [ALT_L, ord("x")]
        # A click in the window takes the keyboard back.
        _click_at(viewer, 60, 60)
        start = _alt_tab_then_x(viewer.display, recorder)
        assert _presses(recorder, start) == [ALT_L, TAB, ord("x")]
        assert viewer.proc.poll() is None


class _FakeWidget:
    """Records grab calls; refuses when told another application holds a grab."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.refuse = False

    def grab_set_global(self) -> None:
        if self.refuse:
            raise RuntimeError("grab failed: another application has grab")
        self.calls.append("set")

    def grab_release(self) -> None:
        self.calls.append("release")


def test_grab_logic_pause_click_and_refusal() -> None:
    from rdesk.client.tk.keyboard import KeyboardGrab

    widget, wanted = _FakeWidget(), [True]
    grab = KeyboardGrab(widget, lambda: wanted[0])
    grab.take()
    grab.take()  # held already: no second grab
    assert widget.calls == ["set"] and grab.held
    grab.pause()
    grab.take()  # the menu's focus changes do not grab again
    assert widget.calls == ["set", "release"] and not grab.held
    grab.take(click=True)
    assert widget.calls == ["set", "release", "set"]
    grab.release()
    wanted[0] = False
    grab.take(click=True)  # unticked (or not in control): nothing
    assert widget.calls == ["set", "release", "set", "release"]
    wanted[0], widget.refuse = True, True
    grab.take()
    assert not grab.held
    grab.release()  # nothing held: nothing released
    assert widget.calls == ["set", "release", "set", "release"]
