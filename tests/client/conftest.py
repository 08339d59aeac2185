"""Fixtures for the viewer's Tk tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.xserver import Xvfb


@pytest.fixture(scope="session")
def tk_display() -> Iterator[str]:
    """One Xvfb for every Tk test of the session.

    Tk never closes a display connection, even after ``destroy()``: a Tk test on a per-test
    Xvfb would leave a connection to a dead server that kills the process at the next use.
    """
    with Xvfb(640, 480) as server:
        yield server.display
