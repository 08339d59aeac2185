"""The capture loop's waiting on change notification (rdesk/host/screen/source.py)."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections.abc import Callable

import numpy as np

from rdesk.host.screen.source import _readable


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


async def test_readable_cancelled_propagates_and_leaves_no_reader_or_timer() -> None:
    """Cancelling the wait (a host stopping) raises in the waiter and unregisters both the
    reader and its timeout; a later timeout of the same length leaves nothing either."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    try:
        waiting = asyncio.ensure_future(_readable(a.fileno(), 30.0))
        await asyncio.sleep(0.01)
        timers = len(loop._scheduled)  # type: ignore[attr-defined]
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        assert waiting.cancelled()
        assert loop.remove_reader(a.fileno()) is False
        live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        assert len(live) < timers  # its 30 s timeout went with it
        b.send(b"x")  # data that arrives after the cancel wakes nobody, costs nothing
        await _readable(a.fileno(), 0.0)
        assert loop.remove_reader(a.fileno()) is False
    finally:
        a.close()
        b.close()


async def test_grabs_go_on_while_no_viewer_has_room() -> None:
    """While every window is full, grabs are deferred, but not for long: the change history
    must keep telling moving tiles from still ones (else moving ones would look still and earn
    a lossless refresh of a frame already gone)."""
    from rdesk.host.screen.source import ScreenSource

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
    source = ScreenSource(capturer)
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


class _Screen:
    """A fake screen whose every drawing is announced on a socket, as X DAMAGE would be."""

    width, height = 128, 64

    def __init__(self) -> None:
        self.value = 0
        self.grabs = 0
        self.polls = 0
        self._rx, self._tx = socket.socketpair()
        self._rx.setblocking(False)

    def draw(self) -> None:
        self.value = (self.value + 1) % 256
        self._tx.send(b"d")

    # Capturer
    def grab(self) -> np.ndarray:
        self.grabs += 1
        return np.full((self.height, self.width, 4), self.value, dtype=np.uint8)

    # ChangeNotifier
    def fileno(self) -> int:
        return self._rx.fileno()

    def poll(self) -> bool:
        self.polls += 1
        drawn = False
        with contextlib.suppress(BlockingIOError):
            while self._rx.recv(4096):
                drawn = True
        return drawn

    def pending(self) -> bool:
        readable, _, _ = select.select([self._rx], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        self._rx.close()
        self._tx.close()


class _Room:
    def mark(self, mask: object) -> None:
        pass

    def resized(self) -> None:
        pass

    def ready(self) -> bool:
        return True


async def _until(predicate: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_each_change_costs_one_grab() -> None:
    """With change notification, each change (typing-like, slower than the frame rate) costs
    one grab and the still screen between them none."""
    from rdesk.host.screen.source import ScreenSource

    screen = _Screen()
    source = ScreenSource(screen, max_fps=50, notifier=screen)
    source.subscribe(_Room())
    task = asyncio.create_task(source.run())
    try:
        await asyncio.sleep(0.05)
        grabs = screen.grabs
        for _ in range(8):
            screen.draw()
            await _until(lambda: int(source.frame[0, 0, 0]) == screen.value)
            await asyncio.sleep(0.06)  # three slots apart
        assert screen.grabs - grabs <= 8 + 1  # one grab a change (+ one that raced a draw)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        screen.close()
