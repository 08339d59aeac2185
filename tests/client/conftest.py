"""Fixtures for the viewer's Tk tests."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.xserver import Xvfb

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def tk_display() -> Iterator[str]:
    """One Xvfb for every Tk test of the session.

    Tk never closes a display connection, even after ``destroy()``: a Tk test on a per-test
    Xvfb would leave a connection to a dead server that kills the process at the next use.
    """
    with Xvfb(640, 480) as server:
        yield server.display


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After each Tk test, once pytest has let go of its fixtures, free its Tk objects here,
    on Tk's thread.

    A window and its callbacks form reference cycles. Left to the cyclic collector, they may
    be freed during a later test on a host's event-loop thread: Tcl refuses that (a Tk
    variable's ``__del__`` raised there) or aborts the process outright. pytest drops a test's
    fixture values only at the very end of its protocol, after every fixture teardown, hence a
    hook rather than a fixture.
    """
    yield
    if HERE in item.path.parents:
        gc.collect()
