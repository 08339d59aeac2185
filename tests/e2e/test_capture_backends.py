"""``rdesk host --capture auto|shm|mss`` end to end: a real ``rdesk host`` process on Xvfb, real
viewers (``rdesk snapshot``, ``rdesk type``) and real X clients as ground truth.

``shm`` is zero-copy capture woken by X DAMAGE; ``mss`` copies each frame and finds changes by
polling and comparing frames, so it also works on a server with neither MIT-SHM nor DAMAGE.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.xserver import Painter, Recorder, Xvfb, assert_images_equal, grab_root

Cli = Callable[..., subprocess.CompletedProcess[str]]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "capture backends"
#: What the banner's ``capture:`` line says for each backend on a server with MIT-SHM and DAMAGE.
BANNER = {"shm": "shm, changes from X DAMAGE", "mss": "mss, polling for changes"}


@dataclasses.dataclass
class HostProcess:
    """A running ``rdesk host`` and what its banner said."""

    proc: subprocess.Popen[str]
    url: str
    fingerprint: str
    capture: str
    password_file: Path

    def viewer_args(self) -> list[str]:
        return ["--fingerprint", self.fingerprint, "--password-file", str(self.password_file)]


def _start(display: str, tmp: Path, *flags: str) -> subprocess.Popen[str]:
    password_file = tmp / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    # The common option after the verb, as the README's host table shows it.
    return subprocess.Popen(
        [sys.executable, "-m", "rdesk", "host", "--display", display, "--bind", "127.0.0.1",
         "--port", "0", "--password-file", str(password_file),
         "--config-dir", str(tmp / "host-config"), *flags],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@contextlib.contextmanager
def rdesk_host(display: str, tmp: Path, *flags: str) -> Iterator[HostProcess]:
    """Run ``rdesk host --display DISPLAY FLAGS...`` until its banner is out; stop it after."""
    proc = _start(display, tmp, *flags)
    try:
        banner: dict[str, str] = {}
        assert proc.stdout is not None
        while "password" not in banner:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            key, _, value = line.strip().partition(": ")
            if key in ("capture", "connect", "fingerprint", "password"):
                banner[key] = value.strip()
        yield HostProcess(
            proc, banner["connect"].split()[0], banner["fingerprint"], banner["capture"],
            tmp / "password.txt",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0, proc.stderr.read() if proc.stderr else code
    # The config dir given after the verb is the one the host used.
    assert (tmp / "host-config" / "host.crt").exists()


def _grab_root_in_a_child(display: str, out: Path) -> Image.Image:
    """:func:`grab_root` in a child process. python-xlib registers extension events in tables
    shared by all its connections: once this process has talked to a server with other
    extensions (an earlier test's), connecting to one that lacks some fails."""
    code = "import sys; from tests.xserver import grab_root as g; g(sys.argv[1]).save(sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, display, str(out)],
                   cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    with Image.open(out) as image:
        return image.convert("RGB")


def _snapshot_is_the_screen(rdesk_cli: Cli, host: HostProcess, display: str, out: Path,
                            painter: Painter, *, stripped: bool = False) -> None:
    """``rdesk snapshot`` equals the X server's own read of the screen and what was painted.

    ``stripped``: the server lacks extensions others have (read the screen in a child).
    """
    result = rdesk_cli("snapshot", host.url, *host.viewer_args(), "-o", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        shot = image.convert("RGB")
    truth = (_grab_root_in_a_child(display, out.with_suffix(".x.png")) if stripped
             else grab_root(display))
    assert_images_equal(shot, truth)
    assert_images_equal(shot, painter.expected())


@pytest.mark.parametrize("capture", ["shm", "mss"])
def test_snapshot_is_pixel_exact(capture: str, xvfb: Xvfb, rdesk_cli: Cli,
                                 tmp_path: Path) -> None:
    with Painter(xvfb.display, seed=5) as painter, \
            rdesk_host(xvfb.display, tmp_path, "--capture", capture) as host:
        assert host.capture == BANNER[capture]
        _snapshot_is_the_screen(rdesk_cli, host, xvfb.display, tmp_path / "1.png", painter)
        # A change after the host started reaches the next viewer (DAMAGE or polling).
        painter.rect(100, 60, 90, 50, "12ab34")
        painter.image(6)
        _snapshot_is_the_screen(rdesk_cli, host, xvfb.display, tmp_path / "2.png", painter)


@pytest.mark.parametrize("capture", ["shm", "mss"])
def test_type_reaches_an_x_client(capture: str, xvfb: Xvfb, rdesk_cli: Cli,
                                  tmp_path: Path) -> None:
    text = f"Hello, rdesk! [{capture}] @ 42"
    with Recorder(xvfb.display) as recorder, \
            rdesk_host(xvfb.display, tmp_path, "--capture", capture) as host:
        assert host.capture == BANNER[capture]
        result = rdesk_cli("type", host.url, text, *host.viewer_args())
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert recorder.wait_for_text(text) == text
        assert not any(e.get("synthetic") for e in recorder.events())  # XTest, not SendEvent


def test_mss_needs_neither_mit_shm_nor_damage(rdesk_cli: Cli, tmp_path: Path) -> None:
    """The portable backend on a server without both extensions: it polls and compares."""
    with Xvfb(320, 240, extra_args=["-extension", "MIT-SHM", "-extension", "DAMAGE"]) as xvfb:
        probe = subprocess.run(["xdpyinfo", "-display", xvfb.display, "-queryExtensions"],
                               capture_output=True, text=True, timeout=30, check=True)
        assert "MIT-SHM" not in probe.stdout and "DAMAGE" not in probe.stdout
        with Painter(xvfb.display, seed=9) as painter, \
                rdesk_host(xvfb.display, tmp_path, "--capture", "mss") as host:
            assert host.capture == "mss, polling for changes"
            _snapshot_is_the_screen(rdesk_cli, host, xvfb.display, tmp_path / "1.png", painter,
                                    stripped=True)
            painter.rect(10, 20, 30, 40, "ff8800")
            _snapshot_is_the_screen(rdesk_cli, host, xvfb.display, tmp_path / "2.png", painter,
                                    stripped=True)


def _without_mit_shm() -> Xvfb:
    return Xvfb(320, 240, extra_args=["-extension", "MIT-SHM"])


def test_shm_without_mit_shm_fails_with_one_line(tmp_path: Path) -> None:
    with _without_mit_shm() as xvfb:
        proc = _start(xvfb.display, tmp_path, "--capture", "shm")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert out == ""
    assert err.splitlines() == [
        "rdesk: error: zero-copy capture unavailable: the X server has no MIT-SHM extension; "
        "--capture mss works without it"
    ]


def test_auto_without_mit_shm_captures_with_mss(rdesk_cli: Cli, tmp_path: Path) -> None:
    with _without_mit_shm() as xvfb, Painter(xvfb.display, seed=4) as painter, \
            rdesk_host(xvfb.display, tmp_path) as host:
        assert host.capture == "mss, changes from X DAMAGE"
        _snapshot_is_the_screen(rdesk_cli, host, xvfb.display, tmp_path / "1.png", painter,
                                stripped=True)


def test_capture_choice_is_checked(rdesk_cli: Cli) -> None:
    result = rdesk_cli("host", "--capture", "xcb", env={**os.environ, "DISPLAY": ":0"})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "rdesk host: error: argument --capture: invalid choice: 'xcb' "
        "(choose from 'auto', 'shm', 'mss')"
    )
