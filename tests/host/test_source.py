"""The capture loop's waiting on change notification (rdesk/host/source.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from rdesk.host.source import _readable


async def test_readable_returns_on_data_and_leaves_no_reader_behind() -> None:
    """A reader left registered on a connection with unread data wakes the event loop on every
    iteration (a busy spin); the wait must unregister it whichever way it ends."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    try:
        b.send(b"x")  # readable, and stays so: nobody reads it
        await asyncio.wait_for(_readable(a.fileno(), 30.0), 30.0)
        assert loop.remove_reader(a.fileno()) is False  # nothing was registered any more
        a.recv(1)
        await _readable(a.fileno(), 0.01)  # the timeout path
        assert loop.remove_reader(a.fileno()) is False
    finally:
        a.close()
        b.close()


async def test_grabs_go_on_while_no_viewer_has_room() -> None:
    """While every window is full, grabs are deferred, but not for long: the change history
    must keep telling moving tiles from still ones (else moving ones would look still and earn
    a lossless refresh of a frame already gone)."""
    import numpy as np

    from rdesk.host.source import ScreenSource

    class Capturer:
        width, height = 128, 64
        grabs = 0

        def grab(self) -> np.ndarray:
            self.grabs += 1
            return np.full((64, 128, 4), self.grabs % 256, dtype=np.uint8)  # always moving

        def close(self) -> None:
            pass

    class Full:
        marks = 0

        def mark(self, mask: np.ndarray) -> None:
            self.marks += 1

        def resized(self) -> None:
            pass

        def ready(self) -> bool:
            return False  # the window never has room

    capturer, viewer = Capturer(), Full()
    source = ScreenSource(capturer)  # type: ignore[arg-type]
    source.subscribe(viewer)
    start = capturer.grabs
    task = asyncio.create_task(source.run())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while capturer.grabs < start + 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert capturer.grabs >= start + 3
        assert source.moving.all()  # the history saw the motion
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
