"""Screen changes painted at a steady pace, and how many updates a watching viewer got
meanwhile: how the security tests show an attack (floods of guesses, of input) does not freeze
the other viewers. The pace is only pacing: what the tests assert is a count."""

from __future__ import annotations

import asyncio

from rdesk.client.connection import Connection
from tests.xserver import Painter

__all__ = ["CHANGES", "paint_and_count"]

#: Screen changes painted in each phase of a test.
CHANGES = 60


async def paint_and_count(painter: Painter, watcher: Connection) -> int:
    """Paint :data:`CHANGES` small changes at a steady pace; the watcher's updates meanwhile."""
    start = watcher.stats.updates
    for i in range(CHANGES):
        await asyncio.to_thread(painter.rect, (i * 37) % 600, (i * 23) % 440, 40, 40,
                                (i * 40 % 256, 255 - i * 3 % 256, 90))
        await asyncio.sleep(0.03)  # pacing only: what is asserted is a count
    await watcher.wait_exact(30)
    return watcher.stats.updates - start
