"""A private virtual display (Xvfb) for ``rdesk host --virtual WxH`` on a machine with no screen."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import IO

__all__ = ["VirtualDisplay", "VirtualDisplayError"]


class VirtualDisplayError(Exception):
    """Xvfb is missing or would not start; ``str()`` is one line."""


class VirtualDisplay:
    """An Xvfb server on a free display number, stopped on :meth:`stop` (or context exit).

    Xvfb picks the number itself (``-displayfd``), so two hosts never collide. DAMAGE (change
    notification) and XTEST (input injection) are enabled; TCP listening is not.
    """

    def __init__(
        self,
        width: int,
        height: int,
        depth: int = 24,
        timeout: float = 15.0,
        *,
        extra_args: Sequence[str] = (),
        output: IO[bytes] | None = None,
    ) -> None:
        """``extra_args`` go to Xvfb after ours; its output goes to ``output`` (else nowhere)."""
        self.width, self.height, self.depth = width, height, depth
        self.timeout = timeout
        self.extra_args = list(extra_args)
        self.output = output
        self.display = ""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running Xvfb process, if started."""
        return self._proc

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
            "+extension", "DAMAGE", "+extension", "XTEST", *self.extra_args,
        ]  # fmt: skip
        out = self.output if self.output is not None else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                cmd, pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(write_fd)
        try:
            number = self._read_display(read_fd)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
        self.display = f":{number}"
        return self

    def _read_display(self, fd: int) -> str:
        deadline = time.monotonic() + self.timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise VirtualDisplayError(f"Xvfb did not start within {self.timeout:g} s")
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if not ready:
                if self._proc is not None and self._proc.poll() is not None:
                    raise VirtualDisplayError(
                        f"Xvfb exited with status {self._proc.returncode} "
                        "(is the display size valid?)"
                    )
                continue
            chunk = os.read(fd, 64)
            if not chunk:
                raise VirtualDisplayError("Xvfb exited before reporting its display")
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
