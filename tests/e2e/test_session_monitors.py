"""`rdesk host --monitor N` on a two-monitor Xvfb (``xrandr --setmonitor``): the viewer's
screen is that monitor's rectangle, and a click in it lands at the right root coordinates."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from rdesk.host.screen.monitors import Monitor, list_monitors
from tests.xserver import Painter, Recorder, Xvfb, assert_images_equal, grab_root

pytestmark = pytest.mark.skipif(shutil.which("xrandr") is None, reason="needs xrandr")


@pytest.fixture
def two_monitors(xvfb_factory: Callable[..., Xvfb]) -> str:
    display = xvfb_factory(640, 240).display
    env = dict(os.environ, DISPLAY=display)
    for name, geometry in (("left", "320/80x240/60+0+0"), ("right", "320/80x240/60+320+0")):
        subprocess.run(["xrandr", "--setmonitor", name, geometry, "none"], env=env, check=True)
    return display


def test_randr_monitors_are_listed(two_monitors: str) -> None:
    assert list_monitors(two_monitors)[:2] == [
        Monitor(0, "left", 0, 0, 320, 240), Monitor(1, "right", 320, 0, 320, 240),
    ]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Host:
    def __init__(self, display: str, tmp: Path, *extra: str) -> None:
        self.port = _port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rdesk", "--config-dir", str(tmp / "cfg"), "host",
             "--display", display, "--bind", "127.0.0.1", "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.banner: dict[str, str] = {}
        assert self.proc.stdout is not None
        while "password" not in self.banner:
            line = self.proc.stdout.readline()
            assert line, self.proc.stderr.read() if self.proc.stderr else ""
            if "sharing display" in line:
                self.banner["sharing"] = line.strip()
            if "fingerprint:" in line:
                self.banner["fingerprint"] = line.split()[-1]
            if "one-time password:" in line:
                self.banner["password"] = line.split("one-time password:")[1].split()[0]
        (tmp / "pw").write_text(self.banner["password"] + "\n")
        self.viewer = ["--fingerprint", self.banner["fingerprint"], "--password-file",
                       str(tmp / "pw")]
        self.url = f"wss://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    made: list[Host] = []
    yield made
    for host in made:
        host.stop()


def _rdesk(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp / "viewer"), *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_snapshot_of_monitor_1_is_that_rectangle(
    two_monitors: str, tmp_path: Path, hosts: list[Host]
) -> None:
    with Painter(two_monitors, seed=5):
        host = Host(two_monitors, tmp_path, "--monitor", "1")
        hosts.append(host)
        assert "monitor 1: right 320x240+320+0 (320x240)" in host.banner["sharing"]
        out = tmp_path / "m1.png"
        result = _rdesk(tmp_path, "snapshot", host.url, *host.viewer, "-o", str(out))
        assert result.returncode == 0, result.stderr
        shot = Image.open(out).convert("RGB")
        assert shot.size == (320, 240)
        assert_images_equal(shot, grab_root(two_monitors, (320, 0, 320, 240)))


def test_the_viewer_verbs_select_a_monitor_before_acting(
    two_monitors: str, tmp_path: Path, hosts: list[Host]
) -> None:
    """``--monitor`` on snapshot (and every viewer verb): the host shares the whole screen,
    the snapshot is monitor 1 only; ``--monitor all`` brings the whole screen back; a monitor
    the host lacks is one line and exit status 7 (refused)."""
    with Painter(two_monitors, seed=6):
        host = Host(two_monitors, tmp_path)  # the whole screen
        hosts.append(host)
        out = tmp_path / "shot.png"

        def snapshot(*extra: str) -> subprocess.CompletedProcess[str]:
            return _rdesk(tmp_path, "snapshot", host.url, *host.viewer, "-o", str(out), *extra)

        # Without --monitor the host keeps sharing what the last viewer chose (for everyone).
        for extra, rect in ((("--monitor", "1"), (320, 0, 320, 240)), ((), (320, 0, 320, 240)),
                            (("--monitor", "all"), (0, 0, 640, 240))):
            result = snapshot(*extra)
            assert result.returncode == 0, result.stderr
            shot = Image.open(out).convert("RGB")
            assert shot.size == rect[2:]
            assert_images_equal(shot, grab_root(two_monitors, rect))
        result = snapshot("--monitor", "9")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 7 and len(lines) == 1, result.stderr
        assert lines[0].startswith("rdesk: error: ") and "no monitor 9" in lines[0]


async def test_monitors_made_while_the_host_runs_reach_the_viewers(
    xvfb_factory: Callable[..., Xvfb], tmp_path: Path, hosts: list[Host]
) -> None:
    """Monitors made (or unplugged) after the host started are seen: a viewer connected
    before is told the new list and can share the new monitor 1 (the host read them once, at
    its start: ``--monitor 1`` stayed "no monitor 1" until it restarted)."""
    import asyncio

    from rdesk.client.connection import connect

    display = xvfb_factory(640, 240).display
    env = dict(os.environ, DISPLAY=display)
    with Painter(display, seed=9):
        host = Host(display, tmp_path)
        hosts.append(host)
        conn = await connect(host.url, host.banner["password"], known_hosts=None,
                             pinned=host.banner["fingerprint"])
        try:
            await conn.wait_for(lambda: len(conn.monitors) == 1, 10)  # the screen alone
            for name, geometry in (("left", "320/80x240/60+0+0"),
                                   ("right", "320/80x240/60+320+0")):
                subprocess.run(["xrandr", "--setmonitor", name, geometry, "none"], env=env,
                               check=True)
            await conn.wait_for(lambda: len(conn.monitors) == 3, 20)
            assert [(m.name, m.x, m.width) for m in conn.monitors.values()][:2] == [
                ("left", 0, 320), ("right", 320, 320)]
            await conn.select_monitor(1)
            await conn.wait_for(
                lambda: conn.monitor == 1 and conn.framebuffer.size == (320, 240), 15)
            await conn.wait_exact(15)
            want = await asyncio.to_thread(grab_root, display, (320, 0, 320, 240))
            assert_images_equal(conn.framebuffer.image, want)
            # The shared monitor unplugged: the whole screen is shared again, for everyone.
            subprocess.run(["xrandr", "--delmonitor", "right"], env=env, check=True)
            await conn.wait_for(lambda: conn.monitors[0].count == 2 and conn.monitor == -1
                                and conn.framebuffer.size == (640, 240), 20)
            assert conn.monitors[1].name == "screen"
            assert sorted(conn.monitors) == [0, 1]  # the unplugged one is not listed still
        finally:
            await conn.close()


async def test_the_window_shares_its_monitor_once_connected(
    two_monitors: str, tmp_path: Path, hosts: list[Host], xvfb_factory: Callable[..., Xvfb]
) -> None:
    """``rdesk connect URL --monitor 1``: the window asks the host for monitor 1 once
    connected; a second viewer then sees monitor 1 shared, at its size."""
    from rdesk.client.connection import connect
    from rdesk.protocol.monitors import ALL
    from tests.e2e.test_window import Viewer

    view_x = xvfb_factory(800, 600)
    host = Host(two_monitors, tmp_path)  # the whole screen until the window asks
    hosts.append(host)
    watcher = await connect(host.url, host.banner["password"], known_hosts=None,
                            pinned=host.banner["fingerprint"])
    # Only the viewer holding control may switch: the watcher lets go, the window joins free.
    await watcher.wait_for(lambda: watcher.holder == watcher.viewer_id, 10)
    await watcher.release_control()
    await watcher.wait_for(lambda: watcher.holder == 0, 10)
    viewer = Viewer(view_x.display, tmp_path / "viewer", [host.url, *host.viewer,
                                                        "--monitor", "1"])
    try:
        await watcher.wait_for(lambda: watcher.monitor == ALL and bool(watcher.monitors), 10)
        await watcher.wait_for(
            lambda: watcher.monitor == 1 and watcher.framebuffer.size == (320, 240), 60)
        assert viewer.proc.poll() is None  # the window is still up
    finally:
        viewer.close()
        await watcher.close()


def test_click_in_monitor_1_lands_at_root_coordinates(
    two_monitors: str, tmp_path: Path, hosts: list[Host]
) -> None:
    with Recorder(two_monitors, geometry="640x240+0+0", override_redirect=True) as recorder:
        host = Host(two_monitors, tmp_path, "--monitor", "1")
        hosts.append(host)
        result = _rdesk(tmp_path, "click", host.url, *host.viewer, "10", "20")
        assert result.returncode == 0, result.stderr
        presses = [e for e in recorder.events(timeout=5) if e["type"] == "button_press"]
        assert [(e["x"], e["y"]) for e in presses] == [(330, 20)]


def test_a_monitor_the_display_lacks_is_one_line(two_monitors: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "cfg"), "host",
         "--display", two_monitors, "--port", str(_port()), "--monitor", "7"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--monitor 7: this display has 3 monitor(s)" in lines[0], lines


async def test_switching_monitor_while_connected(
    two_monitors: str, tmp_path: Path, hosts: list[Host]
) -> None:
    import asyncio

    from rdesk.client.connection import connect
    from rdesk.protocol.monitors import ALL

    with Painter(two_monitors, seed=8):
        host = Host(two_monitors, tmp_path)  # the whole screen at first
        hosts.append(host)
        conn = await connect(host.url, host.banner["password"], known_hosts=None,
                             pinned=host.banner["fingerprint"])
        try:
            await conn.wait_for(lambda: conn.monitor == ALL and len(conn.monitors) == 3, 10)
            assert [(m.name, m.x, m.width) for m in conn.monitors.values()][:2] == [
                ("left", 0, 320), ("right", 320, 320),
            ]
            assert conn.framebuffer.size == (640, 240)
            await conn.select_monitor(1)
            await conn.wait_for(
                lambda: conn.monitor == 1 and conn.framebuffer.size == (320, 240), 15
            )
            await conn.wait_exact(15)
            want = await asyncio.to_thread(grab_root, two_monitors, (320, 0, 320, 240))
            assert_images_equal(conn.framebuffer.image, want)
            # A monitor the display lacks: refused with a notice, nothing changes.
            await conn.select_monitor(9)
            await conn.wait_for(lambda: any("--monitor 9" in n for n in conn.notices), 10)
            assert conn.monitor == 1
        finally:
            await conn.close()


def test_browser_monitor_selector(two_monitors: str, tmp_path: Path, hosts: list[Host]) -> None:
    import time

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed")
    from playwright.sync_api import sync_playwright

    def poll(page: object, expression: str) -> None:
        deadline = time.monotonic() + 30
        while not page.evaluate(expression):  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, expression
            page.wait_for_timeout(100)  # type: ignore[attr-defined]

    with Painter(two_monitors, seed=3), sync_playwright() as p:
        host = Host(two_monitors, tmp_path)
        hosts.append(host)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(f"https://127.0.0.1:{host.port}/")
            page.fill("#password", host.banner["password"])
            page.click("#connect")
            poll(page, "document.body.dataset.monitor === '-1'")
            assert page.is_visible("#monitor-select")
            labels = page.eval_on_selector_all(
                "#monitor-select option", "os => os.map(o => o.textContent)"
            )
            assert labels[:3] == ["All monitors", "0: left 320×240", "1: right 320×240"]
            page.select_option("#monitor-select", "1")
            poll(page, "document.body.dataset.monitor === '1'")
            poll(page, "document.getElementById('screen').width === 320"
                       " && document.body.dataset.exact === 'true'")
            pixels = page.evaluate(
                """() => {
                    const c = document.getElementById("screen");
                    const image = c.getContext("2d").getImageData(0, 0, c.width, c.height);
                    return Array.from(image.data);
                }"""
            )
            # The shared monitor unplugged while connected: the list sent again replaces the
            # old one (no stale third entry) and the whole screen is shared.
            subprocess.run(["xrandr", "--delmonitor", "right"],
                           env=dict(os.environ, DISPLAY=two_monitors), check=True)
            poll(page, "document.body.dataset.monitor === '-1'")
            poll(page, "document.querySelectorAll('#monitor-select option').length < 4")
            labels = page.eval_on_selector_all(
                "#monitor-select option", "os => os.map(o => o.textContent)"
            )
            assert labels == ["All monitors", "0: left 320×240", "1: screen 640×240"]
        finally:
            browser.close()
        rgba = bytes(pixels)
        shown = Image.frombytes("RGBA", (320, 240), rgba).convert("RGB")
        assert_images_equal(shown, grab_root(two_monitors, (320, 0, 320, 240)))


_TK_MENU_SCRIPT = """
import asyncio, sys, threading, tkinter
from types import SimpleNamespace
from rdesk.client.connection import connect
from rdesk.client.tk.monitors import monitor_menu

url, password, fingerprint = sys.argv[1:4]
loop = asyncio.new_event_loop()
threading.Thread(target=loop.run_forever, daemon=True).start()
run = lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(30)
conn = run(connect(url, password, known_hosts=None, pinned=fingerprint))
run(conn.wait_for(lambda: len(conn.monitors) == 3, 10))
root = tkinter.Tk()
parent = tkinter.Menu(root, tearoff=0)
menu = monitor_menu(parent, SimpleNamespace(conn=conn, worker=SimpleNamespace(loop=loop)))
menu.post(0, 0)  # runs its postcommand: the entries are filled from the connection
print([menu.entrycget(i, "label") for i in range(menu.index("end") + 1)], flush=True)
menu.invoke(2)
menu.unpost()
run(conn.wait_for(lambda: conn.monitor == 1 and conn.framebuffer.size == (320, 240), 15))
print("switched", conn.monitor, conn.framebuffer.size, flush=True)
run(conn.close())
"""


def test_tk_monitor_menu_switches(
    two_monitors: str, tmp_path: Path, hosts: list[Host], xvfb_factory: Callable[..., Xvfb]
) -> None:
    """The F8 menu's Monitor cascade, in a real Tk on its own Xvfb, over a real connection.

    In a process of its own: Tk never closes a display connection, and this Xvfb dies with
    the test (tests/client/conftest.py)."""
    host = Host(two_monitors, tmp_path)
    hosts.append(host)
    viewer_x = xvfb_factory(400, 300).display
    result = subprocess.run(
        [sys.executable, "-c", _TK_MENU_SCRIPT, host.url, host.banner["password"],
         host.banner["fingerprint"]],
        env=dict(os.environ, DISPLAY=viewer_x), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "['All monitors', '0: left 320×240', '1: right 320×240', '2: screen 640×240']",
        "switched 1 (320, 240)",
    ]
