"""A private virtual display (Xvfb) for ``rdesk host --virtual WxH`` on a machine with no screen."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

__all__ = ["VirtualDisplay", "VirtualDisplayError"]


class VirtualDisplayError(Exception):
    """Xvfb is missing or would not start; ``str()`` is one line."""


class VirtualDisplay:
    """An Xvfb server on a free display number, stopped on :meth:`stop` (or context exit).

    Xvfb picks the number itself (``-displayfd``), so two hosts never collide. DAMAGE (change
    notification) and XTEST (input injection) are enabled; TCP listening is not.
    """

    def __init__(self, width: int, height: int, depth: int = 24, timeout: float = 15.0) -> None:
        self.width, self.height, self.depth = width, height, depth
        self.timeout = timeout
        self.display = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VirtualDisplay:
        """Start Xvfb and wait until it accepts clients; return self."""
        binary = shutil.which("Xvfb")
        if binary is None:
            raise VirtualDisplayError(
                "--virtual needs Xvfb, which is not installed (sudo apt-get install xvfb)"
            )
        read_fd, write_fd = os.pipe()
        cmd = [
            binary, "-displayfd", str(write_fd), "-screen", "0",
            f"{self.width}x{self.height}x{self.depth}", "-nolisten", "tcp", "-noreset",
            "+extension", "DAMAGE", "+extension", "XTEST",
        ]  # fmt: skip
        try:
            self._proc = subprocess.Popen(
                cmd, pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(write_fd)
        try:
            number = self._read_display(read_fd)
        finally:
            os.close(read_fd)
        self.display = f":{number}"
        return self

    def _read_display(self, fd: int) -> str:
        deadline = time.monotonic() + self.timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            chunk = os.read(fd, 64) if ready else b""
            if not chunk:
                self.stop()
                raise VirtualDisplayError("Xvfb did not start (is the display size valid?)")
            data += chunk
        return data.decode().strip()

    def stop(self) -> None:
        """Terminate Xvfb (kill it if it will not go); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> VirtualDisplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
