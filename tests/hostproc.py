"""A real ``rdesk host`` process for end-to-end tests: its banner read, its output followed.

Unlike ``tests/e2e/conftest.py``'s in-process host, this is the command a user runs, as its
own process: a test can read its ``/proc`` figures, stop it with SIGSTOP, kill it with SIGKILL
and start it again on the same port and config directory.

Example::

    with HostProcess.start(xvfb.display, tmp_path) as host:
        rdesk_cli("snapshot", host.url, *host.viewer_args(), "-o", "s.png")
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
#: The last line of the host's banner (rdesk/host/banner.py ``print_banner``).
BANNER_END = "Ctrl+C stops the host"


class HostProcess:
    """``python -m rdesk host --display D --bind 127.0.0.1 ... FLAGS``, its output in
    :attr:`lines` (every line it printed so far, stdout and stderr merged)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None,
                 stdin: int | None = subprocess.DEVNULL) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=REPO, env=env if env is not None else os.environ.copy(),
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = ""
        self.fingerprint = ""
        self.password_file: Path | None = None

    @classmethod
    def start(cls, display: str, tmp: Path, *flags: str, port: int = 0,
              env: dict[str, str] | None = None, config_dir: Path | None = None,
              stdin: int | None = subprocess.DEVNULL, password: str | None = PASSWORD,
              timeout: float = 60) -> HostProcess:
        """Start a host on ``display`` and wait for its banner. With ``password`` the control
        password is in ``tmp/password.txt``; with ``None`` the config dir's hash is used."""
        argv = [sys.executable, "-m", "rdesk", "host", "--display", display,
                "--bind", "127.0.0.1", "--port", str(port),
                "--config-dir", str(config_dir or tmp / "host-config")]
        password_file = None
        if password is not None:
            password_file = tmp / "password.txt"
            password_file.write_text(password + "\n")
            argv += ["--password-file", str(password_file)]
        host = cls(argv + list(flags), env, stdin)
        host.password_file = password_file
        host.read_banner(timeout)
        return host

    def restart(self, timeout: float = 60) -> HostProcess:
        """The same command again (this process must have ended), banner read."""
        host = HostProcess(self.argv, None, subprocess.DEVNULL)
        host.password_file = self.password_file
        host.read_banner(timeout)
        return host

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, matches: Callable[[str], bool] | str, timeout: float = 30) -> str:
        """The next line of output that ``matches`` (a predicate, or a substring)."""
        test = matches if callable(matches) else (lambda line: matches in line)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"no line matching within {timeout} s; got {self.lines}")\
                    from None
            if line is None:
                self._queue.put(None)
                raise AssertionError(f"the host ended ({self.proc.wait()}): {self.lines}")
            self.lines.append(line)
            if test(line):
                return line

    def read_banner(self, timeout: float = 60) -> None:
        def take(line: str) -> bool:
            key, _, value = line.strip().partition(": ")
            if key == "connect" and not self.url:
                self.url = value.split()[0]
            elif key == "fingerprint":
                self.fingerprint = value.strip()
            return BANNER_END in line

        self.wait_line(take, timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def figures(self) -> dict[str, int]:
        """What a leak would make grow, now: the console's ``status`` line (the host must
        have been started with ``stdin=subprocess.PIPE``) and ``/proc``. ``fds``, ``threads``
        and ``rss_kib`` from ``/proc``; ``tasks``, ``viewers``, ``video`` (live encoders),
        ``pooled`` (threads in pools, which start lazily up to their size), ``unpooled``
        (the other threads) and ``console_fds`` from the console."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        line = self.wait_line("status: ")
        status = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        rss = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{self.pid}/status").read_text(),
                        re.M)
        assert rss, "no VmRSS in the host's /proc status"
        return {
            "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
            "threads": len(os.listdir(f"/proc/{self.pid}/task")),
            "rss_kib": int(rss.group(1)),
            "tasks": status["tasks"],
            "viewers": status["viewers"],
            "video": status["video"],
            "pooled": status["pooled"],
            "unpooled": status["threads"] - status["pooled"],
            "console_fds": status["fds"],
        }

    def viewer_args(self) -> list[str]:
        """CLI options that let a viewer in: the pinned key and the password file."""
        args = ["--fingerprint", self.fingerprint]
        if self.password_file is not None:
            args += ["--password-file", str(self.password_file)]
        return args

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (a clean stop), then the exit status; SIGKILL if it does not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as a crash or the OOM killer."""
        self.proc.kill()
        self.proc.wait(10)

    def __enter__(self) -> HostProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def store_test_password(config_dir: Path, password: str = PASSWORD) -> None:
    """Write ``config_dir/password`` as ``rdesk passwd`` does, with the cheapest scrypt cost
    the host accepts (n=1024 instead of 32768): a test that logs in a thousand times measures
    the host's connections, not the key derivation. The host reads the cost from the hash."""
    import base64

    from rdesk.host.security.passwords import write_password_hash

    cheap = config_dir / "cheap-template"
    config_dir.mkdir(parents=True, exist_ok=True)
    cheap.write_text("scrypt$1024$8$1$" + base64.b64encode(os.urandom(16)).decode() + "$"
                     + base64.b64encode(bytes(32)).decode() + "\n")
    write_password_hash(config_dir / "password", password, like=cheap)
    cheap.unlink()
