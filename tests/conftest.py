"""Shared pytest fixtures. Logic lives in :mod:`tests.xserver`; keep this file small."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.xserver import Xvfb


@pytest.fixture
def xvfb() -> Iterator[Xvfb]:
    """A fresh 640x480x24 Xvfb server for one test."""
    with Xvfb(640, 480) as server:
        yield server


@pytest.fixture
def xvfb_factory() -> Iterator[Callable[..., Xvfb]]:
    """Start Xvfb servers of any size: ``xvfb_factory(width, height, depth=24)``.

    Every server started is stopped when the test ends.
    """
    servers: list[Xvfb] = []

    def make(width: int = 640, height: int = 480, depth: int = 24) -> Xvfb:
        server = Xvfb(width, height, depth).start()
        servers.append(server)
        return server

    yield make
    for server in reversed(servers):
        server.stop()
