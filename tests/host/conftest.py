"""A private Xvfb for the capture/damage tests (see tests/conftest.py for the shared one)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from rdesk.host.screen.virtual import VirtualDisplay

__all__: list[str] = []


@pytest.fixture(scope="module")
def _host_xvfb() -> Iterator[str]:
    """Display name (":N") of a fresh 640x480x24 Xvfb, stopped after the module."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed")
    with VirtualDisplay(640, 480) as display:
        yield display.display
