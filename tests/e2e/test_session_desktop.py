"""`rdesk host --virtual`: the Xvfb demands its cookie, a session runs in it and ends with it.

Real Xvfb, real X clients (``xdpyinfo``), real ``rdesk host`` processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdesk.host.screen.virtual import VirtualDisplay

pytestmark = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xdpyinfo") is None,
    reason="needs Xvfb and xdpyinfo",
)


def _xdpyinfo(display: str, xauthority: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "XAUTHORITY")}
    env["XAUTHORITY"] = xauthority
    return subprocess.run(
        ["xdpyinfo", "-display", display], env=env, capture_output=True, timeout=20
    )


def test_virtual_display_refuses_a_client_without_the_cookie(tmp_path: Path) -> None:
    empty = tmp_path / "no-cookie"
    empty.write_bytes(b"")
    with VirtualDisplay(320, 240, authorize=True) as server:
        cookie = server.xauthority
        assert cookie is not None
        assert stat.S_IMODE(cookie.stat().st_mode) == 0o600
        assert stat.S_IMODE(cookie.parent.stat().st_mode) == 0o700
        refused = _xdpyinfo(server.display, str(empty))
        assert refused.returncode != 0
        assert b"unable to open display" in refused.stderr
        accepted = _xdpyinfo(server.display, str(cookie))
        assert accepted.returncode == 0, accepted.stderr
        # python-xlib (the host's DAMAGE, XSHM, input and clipboard clients) finds it too.
        from Xlib import display as xdisplay

        os.environ["XAUTHORITY"] = str(cookie)
        try:
            conn = xdisplay.Display(server.display)
            assert conn.screen().width_in_pixels == 320
            conn.close()
        finally:
            del os.environ["XAUTHORITY"]
    assert not cookie.exists() and not cookie.parent.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Host:
    """An ``rdesk host --virtual`` process; its stdout lines collected as they come."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "cfg"), "host",
             "--virtual", "320x240", "--bind", "127.0.0.1", "--port", str(_free_port()),
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k not in ("DISPLAY", "XAUTHORITY")},
        )  # fmt: skip
        self.lines: list[str] = []

    def read_until(self, text: str) -> str:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            assert line, f"host ended: {self.proc.stderr.read() if self.proc.stderr else ''}"
            self.lines.append(line)
            if text in line:
                return line

    def ready(self) -> None:
        """Wait for the banner's last line. rdesk installs its SIGTERM handler just after
        printing it (rdesk/host/app.py), so a signal sent the same instant would kill it
        unhandled: give it a moment (not a timing assertion)."""
        self.read_until("Ctrl+C stops the host")
        time.sleep(0.5)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[Host]]:
    made: list[Host] = []
    yield made
    for host in made:
        if host.proc.poll() is None:
            host.proc.kill()
            host.proc.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_file(path: Path, host: Host) -> str:
    for _ in range(300):
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        assert host.proc.poll() is None, host.proc.stderr.read() if host.proc.stderr else ""
        time.sleep(0.1)
    raise AssertionError(f"{path} never written")


# The session records its pid and whether its own X client got in with the cookie it was given.
_SESSION = (
    "sh -c 'if xdpyinfo >/dev/null 2>&1; then echo in > x; else echo out > x; fi; "
    "echo $$ > pid; while [ ! -e stop ]; do sleep 0.1; done'"
)


def test_session_runs_with_the_cookie_and_ends_with_the_host(
    tmp_path: Path, hosts: list[Host]
) -> None:
    host = Host(tmp_path, "--session", _SESSION)
    hosts.append(host)
    host.ready()
    pid = int(_wait_file(tmp_path / "pid", host))
    assert _wait_file(tmp_path / "x", host) == "in\n"
    assert _alive(pid)
    assert host.stop() == 0
    assert not _alive(pid)


def test_host_stops_cleanly_when_the_session_ends(tmp_path: Path, hosts: list[Host]) -> None:
    host = Host(tmp_path, "--session", _SESSION)
    hosts.append(host)
    host.ready()
    _wait_file(tmp_path / "pid", host)
    (tmp_path / "stop").touch()
    assert "status 0" in host.read_until("the session ended")
    assert host.proc.wait(30) == 0


def test_keep_running_outlives_the_session(tmp_path: Path, hosts: list[Host]) -> None:
    host = Host(tmp_path, "--session", _SESSION, "--keep-running")
    hosts.append(host)
    host.ready()
    _wait_file(tmp_path / "pid", host)
    (tmp_path / "stop").touch()
    host.read_until("still hosting")
    assert host.proc.poll() is None
    assert host.stop() == 0


def test_a_missing_session_command_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "cfg"), "host",
         "--virtual", "320x240", "--port", str(_free_port()), "--session", "no-such-wm-x"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot start the session 'no-such-wm-x'" in lines[0], lines


@pytest.mark.skipif(shutil.which("openbox") is None, reason="default session needs openbox")
def test_default_session_is_a_window_manager_gone_after_the_host(
    tmp_path: Path, hosts: list[Host]
) -> None:
    host = Host(tmp_path)
    hosts.append(host)
    host.ready()
    children: list[int] = []
    for _ in range(100):
        children = [
            int(p.parent.name) for p in Path("/proc").glob("[0-9]*/stat")
            if _parent_and_name(p) == (host.proc.pid, "openbox")
        ]  # fmt: skip
        if children:
            break
        time.sleep(0.1)
    assert children, "no openbox under the host"
    assert host.stop() == 0
    assert not any(_alive(pid) for pid in children)


def _parent_and_name(stat_file: Path) -> tuple[int, str] | None:
    try:
        text = stat_file.read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    return int(text.rsplit(")", 1)[1].split()[1]), name
