"""The capture loop's waiting on change notification (rdesk/host/source.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import numpy as np

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


async def test_continuous_motion_is_grabbed_without_the_notifier_and_nothing_is_lost() -> None:
    """A screen drawn faster than the frame rate is grabbed on the frame schedule with no
    damage round trips; once drawing stops, the last drawing is still grabbed and the loop goes
    back to waiting for damage (no more grabs)."""
    from rdesk.host.source import STREAK_TO_POLL, ScreenSource

    screen = _Screen()
    source = ScreenSource(screen, max_fps=50, notifier=screen)
    source.subscribe(_Room())
    drawing = True

    async def drawer() -> None:
        while drawing:
            screen.draw()
            await asyncio.sleep(0.004)  # five drawings a slot

    draw_task = asyncio.create_task(drawer())
    task = asyncio.create_task(source.run())
    try:
        await _until(lambda: screen.grabs > STREAK_TO_POLL + 5)
        polls, grabs = screen.polls, screen.grabs
        await _until(lambda: screen.grabs >= grabs + 10)
        # Polling mode: at most the poll of the slot it was entered in, none per grab.
        assert screen.polls - polls <= 2
        drawing = False
        await draw_task
        screen.draw()  # one last drawing, after the motion
        await _until(lambda: int(source.frame[0, 0, 0]) == screen.value)
        await asyncio.sleep(0.1)  # let the loop settle into waiting for damage
        grabs = screen.grabs
        await asyncio.sleep(0.3)  # well under the 1 s safety poll: a still screen is not grabbed
        assert screen.grabs == grabs
        screen.draw()  # and damage still wakes it
        await _until(lambda: int(source.frame[0, 0, 0]) == screen.value)
    finally:
        drawing = False
        for t in (task, draw_task):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        screen.close()


async def test_changes_slower_than_the_frame_rate_keep_the_notifier() -> None:
    """Typing-like changes (slower than the frame rate) never switch to polling, so each one
    costs one grab and a still screen between them none."""
    from rdesk.host.source import ScreenSource

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
