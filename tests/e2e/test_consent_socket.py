"""``--consent ask`` on a host without a terminal (a service): ``rdesk consent`` answers it
through the consent socket in the user's runtime directory (rdesk/host/serve/consentsock.py).

A real ``rdesk host`` process with standard input at end of file, real ``rdesk snapshot``
viewers waiting to be accepted, and ``rdesk consent`` run as the desktop user would.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rdesk.cli import exits
from tests.hostproc import HostProcess
from tests.xserver import Xvfb

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _viewer(host: HostProcess, tmp: Path, name: str) -> subprocess.Popen[str]:
    """A real ``rdesk snapshot`` that waits for the host's user to accept it."""
    return subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp / "viewer"), "snapshot",
         host.url, *host.viewer_args(), "-o", str(tmp / f"{name}.png"), "--timeout", "60"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _waiting(host: HostProcess) -> int:
    """The number of the next viewer the host announces as waiting."""
    line = host.wait_line("wants to connect", timeout=60)
    match = re.search(r"viewer #(\d+)", line)
    assert match, line
    return int(match.group(1))


def _raw(path: Path, data: bytes) -> list[dict[str, object]]:
    """Send ``data`` on the consent socket as it is, then end; the replies until the host
    closes."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the end of the client's input
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return [json.loads(line) for line in received.splitlines()]


def test_rdesk_consent_answers_a_host_without_a_terminal(
    xvfb: Xvfb, tmp_path: Path, rdesk_cli: Cli
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    sock_path = runtime / "rdesk" / "consent.sock"
    host = HostProcess.start(xvfb.display, tmp_path, "--consent", "ask", env=env)
    with host:
        assert str(sock_path) in host.wait_line("consent:")
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700

        # Listed, then accepted: the viewer gets its picture.
        first = _viewer(host, tmp_path, "first")
        number = _waiting(host)
        listed = rdesk_cli("consent", env=env)
        assert listed.returncode == 0, listed.stderr
        assert f"#{number} " in listed.stdout and "[control]" in listed.stdout
        answered = rdesk_cli("consent", "accept", str(number), env=env)
        assert answered.returncode == 0, answered.stderr
        assert first.wait(60) == 0, first.communicate()[1]
        assert (tmp_path / "first.png").stat().st_size > 0

        # Refused: the viewer is told so and exits with the policy code.
        second = _viewer(host, tmp_path, "second")
        number = _waiting(host)
        assert rdesk_cli("consent", "deny", str(number), env=env).returncode == 0
        _, err = second.communicate(timeout=60)
        assert second.returncode == exits.REFUSED, err
        assert "refused" in err
        again = rdesk_cli("consent", "accept", str(number), env=env)
        assert again.returncode != 0 and f"no viewer #{number} is waiting" in again.stderr

        # Bad input gets one error line and a close; the socket keeps serving.
        assert _raw(sock_path, b"garbage\n") == [{"error": "not a JSON line"}]
        assert _raw(sock_path, b"x" * 5000) == [{"error": "line over 4096 bytes"}]
        assert _raw(sock_path, b'{"op": "list"}\n') == [{"pending": []}]

        # --watch asks about each viewer as it arrives (the answer read from a pipe here).
        watch = subprocess.Popen(
            [sys.executable, "-m", "rdesk", "consent", "--watch"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert watch.stdin is not None and watch.stdout is not None
        watch.stdin.write("y\n")
        watch.stdin.flush()
        third = _viewer(host, tmp_path, "third")
        number = _waiting(host)
        assert third.wait(60) == 0, third.communicate()[1]
        assert f"viewer #{number} accepted" in watch.stdout.readline()
    assert host.proc.returncode == 0, host.lines
    # The host's end closes the watcher and removes the socket.
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert "the host closed the consent socket" in out
    assert not sock_path.exists()
