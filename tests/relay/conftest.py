"""Fixtures for the relay tests: private Redis servers when ``redis-server`` is installed."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.relay.instances import REDIS, Redis


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """``unix://`` address of a fresh redis-server on a socket in ``tmp_path`` (no TCP port,
    no persistence), stopped after the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    """A redis-server the test starts (``await redis.start()``), stops and starts again."""
    if REDIS is None:
        pytest.skip("redis-server not installed")
    server = Redis(tmp_path)
    try:
        yield server
    finally:
        server.stop()
