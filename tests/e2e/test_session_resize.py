"""A viewer resizes the host's virtual desktop to its window (``resize``, docs/protocol.md).

Real ``rdesk host --virtual --virtual-server xvnc`` processes (TigerVNC's Xvnc, VNC port off),
real viewers over TLS, the X server's own size read by a separate X client (python-xlib), the
session's maximised xterm under openbox found with ``xdotool``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from rdesk.client.connection import Connection, connect
from tests.xserver import (
    XHarnessError,
    Xvfb,
    assert_images_equal,
    image_diff,
    run_xdotool,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    shutil.which("Xvnc") is None or shutil.which("Xvfb") is None,
    reason="needs Xvnc (tigervnc-standalone-server) and Xvfb",
)

CONTROL, VIEW = "resize-control-password", "resize-view-password"
# The session tells the test where its display is and which cookie opens it, then runs a
# window manager and a terminal full of text (what a user's desktop holds); the test has the
# window manager maximise it.
# openbox starts the terminal once it manages the screen (a terminal mapped before the window
# manager runs may stay unviewable).
_DESKTOP = 'echo "$DISPLAY $XAUTHORITY" > xenv; exec openbox --startup "sh {}"\n'
_TERM = "exec xterm -bg '#203040' -fg '#e0e0a0' -e sh -c 'cat /etc/services; exec sleep 600'\n"
_BARE = 'echo "$DISPLAY $XAUTHORITY" > xenv; exec sleep 600\n'


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Host:
    """``rdesk host`` with a control and a view-only password; its banner read."""

    def __init__(self, tmp: Path, *flags: str) -> None:
        self.port = _port()
        (tmp / "control").write_text(CONTROL + "\n")
        (tmp / "view").write_text(VIEW + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rdesk", "--config-dir", str(tmp / "cfg"), "host",
             "--bind", "127.0.0.1", "--port", str(self.port),
             "--password-file", str(tmp / "control"), "--view-password-file", str(tmp / "view"),
             *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp,
            stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k not in ("XAUTHORITY",)},
        )  # fmt: skip
        self.lines: list[str] = []
        self.fingerprint = ""
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            assert line, f"host ended: {self.lines}"
            self.lines.append(line)
            if "fingerprint:" in line:
                self.fingerprint = line.split()[-1]
            if "Ctrl+C stops the host" in line:
                break
        self.url = f"wss://127.0.0.1:{self.port}"
        # Keep reading: a full pipe would stall the host; the lines explain a failure.
        threading.Thread(target=self.lines.extend, args=(self.proc.stdout,), daemon=True).start()

    async def viewer(self, password: str = CONTROL) -> Connection:
        return await connect(self.url, password, known_hosts=None, pinned=self.fingerprint)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(10)


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    made: list[Host] = []
    yield made
    for host in made:
        host.stop()
        sys.stderr.write("".join(host.lines))  # shown by pytest when the test failed


def bare_host(tmp: Path) -> Host:
    """A 640x480 Xvnc desktop whose session only tells where it is (``xenv``)."""
    (tmp / "bare.sh").write_text(_BARE)
    return Host(tmp, "--virtual", "640x480", "--virtual-server", "xvnc", "--session", "sh bare.sh")


def _desktop_env(tmp: Path) -> tuple[str, str]:
    """The virtual display and its cookie, as the session wrote them."""
    xenv = tmp / "xenv"
    assert wait_until(lambda: xenv.exists() and xenv.read_text().endswith("\n"), 30)
    display, cookie = xenv.read_text().split()
    return display, cookie


def _screen_size(display: str) -> tuple[int, int]:
    """The server's screen size now, as a separate X client (``xdpyinfo``) reads it. Not
    python-xlib in this process: its event tables are shared between connections, and after a
    connection to a server with other extension numbers (an Xvfb of another test) it fails."""
    out = subprocess.run(["xdpyinfo", "-display", display], capture_output=True, text=True,
                         timeout=20, check=True).stdout
    match = re.search(r"dimensions:\s+(\d+)x(\d+) pixels", out)
    assert match, out
    return int(match[1]), int(match[2])


def _xterm(display: str) -> int:
    return int(run_xdotool(display, "search", "--onlyvisible", "--class", "xterm").split()[0])


def _has_xterm(display: str) -> bool:
    try:
        return _xterm(display) > 0
    except (XHarnessError, IndexError):  # xdotool finds none yet
        return False


def _xterm_size(display: str) -> tuple[int, int]:
    shape = run_xdotool(display, "getwindowgeometry", "--shell", str(_xterm(display)))
    fields = dict(line.split("=", 1) for line in shape.split())
    return int(fields["WIDTH"]), int(fields["HEIGHT"])


def _fresh(code: str, *args: str) -> None:
    """Run python-xlib ``code`` (``sys.argv[1:]`` = ``args``) in a new process: python-xlib's
    event tables are shared by a process's connections, and once one went to a server with
    other extension numbers (another test's Xvfb) a connection to this one fails."""
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=30,
                   cwd=Path(__file__).resolve().parents[2])


def _maximise(display: str, window: int) -> None:
    """Ask the window manager to maximise ``window`` (EWMH ``_NET_WM_STATE``, as wmctrl)."""
    _fresh(_MAXIMISE, display, str(window))


def _root_image(display: str, tmp: Path) -> Image.Image:
    """The screen, read by tests.xserver.grab_root in a fresh process."""
    _fresh("import sys; from tests.xserver import grab_root; "
           "grab_root(sys.argv[1]).save(sys.argv[2])", display, str(tmp / "root.png"))
    return Image.open(tmp / "root.png").convert("RGB")


_MAXIMISE = """
import sys
from Xlib import X, display
from Xlib.protocol.event import ClientMessage
conn = display.Display(sys.argv[1])
atoms = [conn.intern_atom(n) for n in (
    "_NET_WM_STATE", "_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ")]
event = ClientMessage(window=conn.create_resource_object("window", int(sys.argv[2])),
                      client_type=atoms[0], data=(32, [1, atoms[1], atoms[2], 1, 0]))
conn.screen().root.send_event(
    event, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
conn.sync()
"""


@pytest.mark.skipif(shutil.which("openbox") is None or shutil.which("xterm") is None
                    or shutil.which("xdotool") is None, reason="needs openbox, xterm, xdotool")
async def test_the_desktop_takes_the_viewers_size(
    tmp_path: Path, hosts: list[Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    """1024x768 → 1280x720: the X server's screen, the maximised xterm, the viewer's
    ``screen``, a pixel-exact frame, and a second viewer's screen all follow; the view-only
    viewer may not resize; a size the X server does not take is refused with its range."""
    (tmp_path / "desktop.sh").write_text(_DESKTOP.format(tmp_path / "term.sh"))  # own cwd
    (tmp_path / "term.sh").write_text(_TERM)
    host = Host(tmp_path, "--virtual", "1024x768", "--virtual-server", "xvnc",
                "--session", "sh desktop.sh", "--audit-log", str(tmp_path / "audit.log"))
    hosts.append(host)
    display, cookie = _desktop_env(tmp_path)
    monkeypatch.setenv("XAUTHORITY", cookie)
    assert _screen_size(display) == (1024, 768)
    assert wait_until(lambda: _has_xterm(display), 30)
    _maximise(display, _xterm(display))
    assert wait_until(lambda: _xterm_size(display)[0] == 1024, 30)
    conn, watcher = await host.viewer(), await host.viewer(VIEW)
    try:
        assert conn.framebuffer.size == (1024, 768)
        refused = await watcher.request_resize(800, 600)
        assert not refused.ok and "in control" in refused.reason
        assert (refused.width, refused.height) == (1024, 768)

        result = await conn.request_resize(1280, 720)
        assert result.ok, result.reason
        assert (result.width, result.height) == (1280, 720)
        assert _screen_size(display) == (1280, 720)
        for viewer in (conn, watcher):
            await viewer.wait_for(lambda v=viewer: v.framebuffer.size == (1280, 720), 20)
        # A maximised window follows the screen (openbox sees RandR's change).
        assert wait_until(lambda: _xterm_size(display)[0] == 1280, 30), _xterm_size(display)
        # The terminal redraws a few times as it takes its new size: compare once the
        # viewer is exact and the screen still (each round waits for an exact frame).
        for _ in range(20):
            await conn.wait_exact(30)
            if image_diff(conn.framebuffer.image, _root_image(display, tmp_path))[0] == 0:
                break
            await asyncio.sleep(0.2)
        assert_images_equal(conn.framebuffer.image, _root_image(display, tmp_path))

        tiny = await conn.request_resize(16, 16)  # within the protocol, below Xvnc's 32x32
        assert not tiny.ok and "outside this X server's sizes" in tiny.reason, tiny.reason
        assert _screen_size(display) == (1280, 720)
        with pytest.raises(ValueError, match="16 to 8192"):
            await conn.request_resize(9000, 600)  # the viewer library refuses before sending
    finally:
        await conn.close()
        await watcher.close()
    audit = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    resizes = [(e["viewer"], e["width"], e["height"]) for e in audit if e["kind"] == "resize"]
    assert resizes == [(conn.viewer_id, 1280, 720)], audit


async def test_the_last_of_a_burst_wins(tmp_path: Path, hosts: list[Host]) -> None:
    """Requests faster than one per 0.5 s: each is answered once, the ones overtaken by a later
    request as replaced, and the desktop ends at the last size asked."""
    host = bare_host(tmp_path)
    hosts.append(host)
    display, cookie = _desktop_env(tmp_path)
    conn = await host.viewer()
    try:
        sizes = [(700 + 10 * i, 500 + 10 * i) for i in range(6)]
        results = await asyncio.gather(*(conn.request_resize(w, h) for w, h in sizes))
        done = [r for r in results if r.ok]
        replaced = [r for r in results if not r.ok]
        assert all("replaced by a later resize" in r.reason for r in replaced), results
        assert results[-1].ok and (results[-1].width, results[-1].height) == sizes[-1]
        assert 1 <= len(done) < len(sizes)  # the burst was coalesced, not applied one by one
        os.environ["XAUTHORITY"] = cookie
        try:
            assert _screen_size(display) == sizes[-1]
        finally:
            del os.environ["XAUTHORITY"]
        await conn.wait_for(lambda: conn.framebuffer.size == sizes[-1], 20)
    finally:
        await conn.close()


@pytest.mark.parametrize("server", ["real", "xvfb"])
async def test_a_host_that_cannot_resize_says_why(
    tmp_path: Path, hosts: list[Host], server: str, xvfb_factory: Callable[..., Xvfb]
) -> None:
    """Sharing a real display (the owner's screen) and a virtual Xvfb both refuse, with the
    reason; the connection stays up."""
    if server == "real":
        host = Host(tmp_path, "--display", xvfb_factory(320, 240).display)
        hosts.append(host)
        await _refused(host, "shares a real display")
    else:
        host = Host(tmp_path, "--virtual", "320x240", "--session", "none")
        hosts.append(host)
        await _refused(host, "--virtual-server xvnc")


async def _refused(host: Host, reason: str) -> None:
    conn = await host.viewer()
    try:
        before = conn.framebuffer.size
        result = await conn.request_resize(640, 480)
        assert not result.ok and reason in result.reason, result.reason
        assert (result.width, result.height) == before
        assert (await conn.sync()).ok  # still connected, still in control
    finally:
        await conn.close()


def test_the_cli_verb(tmp_path: Path, hosts: list[Host]) -> None:
    """``rdesk resize URL WxH`` prints the new size; a refusal is one line and status 7; a
    size out of bounds is a usage error before connecting."""
    host = Host(tmp_path, "--virtual", "640x480", "--virtual-server", "xvnc",
                "--session", "none")
    hosts.append(host)

    def rdesk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "viewer"), "resize",
             host.url, "--fingerprint", host.fingerprint, *args],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    ok = rdesk("--password-file", str(tmp_path / "control"), "800x600")
    assert ok.returncode == 0 and ok.stdout.strip() == "800x600", ok.stderr
    view = rdesk("--password-file", str(tmp_path / "view"), "900x700")
    assert view.returncode == 7, view
    assert view.stderr.strip().splitlines() == [
        "rdesk: resize refused: only the viewer in control may resize the desktop"
    ]
    big = rdesk("--password-file", str(tmp_path / "control"), "9000x700")
    assert big.returncode == 2 and "between 16 and 8192" in big.stderr
