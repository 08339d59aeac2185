"""A private Xvfb for the capture/damage tests (see tests/conftest.py for the shared one)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

__all__: list[str] = []


def start_xvfb(size: str = "640x480x24") -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a display number it picks itself (-displayfd); return (process, ":N")."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb not installed")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        number = pipe.readline().strip()  # written once the server accepts connections
    if not number:
        proc.kill()
        proc.wait()
        pytest.fail("Xvfb did not report a display number")
    return proc, f":{int(number)}"


@pytest.fixture(scope="module")
def _host_xvfb() -> Iterator[str]:
    """Display name (":N") of a fresh 640x480x24 Xvfb, stopped after the module."""
    proc, name = start_xvfb()
    try:
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
