"""The host's single capture loop and the per-tile change history it feeds to every viewer.

One :class:`ScreenSource` per host, however many viewers (docs/architecture.md, "The data
path"): it grabs the screen when it may have changed, diffs it against the previous grab tile
by tile, and ORs the changed tiles into the dirty set of every subscriber. Viewers then encode
the *current* frame's pixels for their dirty tiles whenever they have room — never a backlog
of old frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import numpy as np

from rdesk.common.waiting import wait_at_most
from rdesk.host.encoding.tiles import TILE, dirty_tiles
from rdesk.host.screen.capture import Capturer

__all__ = [
    "DAMAGE_SAFETY_POLL",
    "HISTORY_POLL",
    "IDLE_POLL",
    "MOTION_GAP",
    "ScreenSource",
    "Subscriber",
]

log = logging.getLogger(__name__)

#: A tile that changes again within this many seconds of its previous change is "moving":
#: it goes lossy (JPEG) and is refreshed losslessly once it stops.
MOTION_GAP = 0.15
#: Without change notification, the slowest poll rate on a still screen (seconds).
IDLE_POLL = 0.1
#: With change notification, still grab this often in case an event was missed (seconds).
DAMAGE_SAFETY_POLL = 1.0
#: While no viewer could use a new frame, grab at least this often (seconds), so the change
#: history that tells moving tiles from still ones stays true. Below MOTION_GAP / 2.
HISTORY_POLL = 0.05


class Subscriber(Protocol):
    """A viewer's side of the source: told which tiles changed."""

    def mark(self, mask: np.ndarray) -> None:
        """OR ``mask`` (bool, tiles) into the dirty set and wake the sender."""

    def resized(self) -> None:
        """The screen changed size: everything is dirty and the viewer must be told."""

    def ready(self) -> bool:
        """Whether the viewer could use a new frame now (its window has room, and no newer
        frame than the one it is sending waits for it already)."""


class ChangeNotifier(Protocol):
    """Tells when the screen may have changed (X DAMAGE)."""

    def fileno(self) -> int: ...

    def poll(self) -> bool:
        """Drain the notifications; True if anything was drawn since the last poll (the
        notifier is then re-armed ahead of any grab started after this returns)."""
        ...

    def pending(self) -> bool:
        """Whether :meth:`poll` may return True, without consuming anything (cheap)."""
        ...

    def close(self) -> None: ...


class ScreenSource:
    """Captures the screen and tracks, per tile, when it last changed.

    Attributes read by viewers: :attr:`frame` (the latest grab, BGRA, never mutated in place —
    a new grab replaces the array), :attr:`frame_id` (increases with every grab that changed
    something), :attr:`last_change` / :attr:`moving` (per tile).
    """

    def __init__(
        self,
        capturer: Capturer,
        *,
        max_fps: float = 60.0,
        notifier: ChangeNotifier | None = None,
        tile: int = TILE,
    ) -> None:
        self.capturer = capturer
        self.tile = tile
        self.min_interval = 1.0 / max_fps
        self.notifier = notifier
        self.frame: np.ndarray = capturer.grab()
        self.frame_id = 0
        self.grabs = 0
        self._subscribers: set[Subscriber] = set()
        self._room = asyncio.Event()
        self._reset_history(time.monotonic())

    @property
    def width(self) -> int:
        return int(self.frame.shape[1])

    @property
    def height(self) -> int:
        return int(self.frame.shape[0])

    @property
    def tiles_shape(self) -> tuple[int, int]:
        """(rows, columns) of tiles covering the screen."""
        return (-(-self.height // self.tile), -(-self.width // self.tile))

    def _reset_history(self, now: float) -> None:
        shape = self.tiles_shape
        self.last_change = np.full(shape, now, dtype=np.float64)
        #: Tiles whose last two changes were less than MOTION_GAP apart.
        self.moving = np.zeros(shape, dtype=bool)

    def subscribe(self, subscriber: Subscriber) -> None:
        """Add a viewer; its first update is the whole, freshly grabbed screen.

        The loop does not grab while nobody watches, so the last frame may be stale: grab now,
        before the newcomer is marked, so it never starts from an old picture.
        """
        self.capture_once(time.monotonic())
        self._subscribers.add(subscriber)
        subscriber.mark(np.ones(self.tiles_shape, dtype=bool))

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def room(self) -> None:
        """A viewer could use a new frame again (an ack arrived, a round was sent): a deferred
        grab may go ahead."""
        self._room.set()

    async def _until_someone_has_room(self) -> None:
        """Defer a grab while no viewer could use it (every window full, or a newer frame than
        the one being sent already waiting) — for at most :data:`HISTORY_POLL`.

        Nobody could be sent the grab yet; the diff of the grab that follows is taken against
        the last one, so deferring loses no change, and it saves the grab and diff of frames
        no viewer would ever get (a slow viewer sees fewer frames, never stale ones: a round
        sends the frame grabbed during the round before it, at most that round's length old).
        But the per-tile change history must stay true: without grabs, moving tiles would look
        still after ``lossless_delay`` and earn a lossless refresh of a frame already gone
        (megabytes, for video, on a link that was full to begin with). So a deferred grab
        still happens every :data:`HISTORY_POLL`.
        """
        deadline = time.monotonic() + HISTORY_POLL
        while self._subscribers and not any(sub.ready() for sub in self._subscribers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._room.clear()
            await wait_at_most(self._room.wait(), remaining)

    def capture_once(self, now: float) -> bool:
        """Grab, diff and notify subscribers; return True if anything changed."""
        frame = self.capturer.grab()
        self.grabs += 1
        if frame.shape != self.frame.shape:
            log.info("screen resized to %dx%d", frame.shape[1], frame.shape[0])
            self.frame = frame
            self.frame_id += 1
            self._reset_history(now)
            for sub in list(self._subscribers):
                sub.resized()
            return True
        mask = dirty_tiles(self.frame, frame, self.tile)
        if not mask.any():
            return False
        self.frame = frame
        self.frame_id += 1
        self.moving[mask] = (now - self.last_change[mask]) < MOTION_GAP
        self.last_change[mask] = now
        for sub in list(self._subscribers):
            sub.mark(mask)
        return True

    async def run(self) -> None:
        """Capture until cancelled: on change notification if available, else by polling.

        Polling adapts: every frame interval while the screen changes, slowing to
        :data:`IDLE_POLL` when it is still, so a still screen costs almost nothing.
        """
        notifier = self.notifier
        interval = self.min_interval
        # Grab slots on a 1/max_fps schedule: a wake-up a little late (timer granularity)
        # does not push every later grab back, so 60 Hz motion is caught at 60 Hz.
        due = time.monotonic()
        while True:
            await self._until_someone_has_room()
            started = time.monotonic()
            due = max(due, started - self.min_interval / 2) + self.min_interval
            if notifier is not None:
                # Drain damage first, then grab: drawing after the drain re-arms us.
                notifier.poll()
            changed = self.capture_once(started) if self._subscribers else False
            if notifier is None:
                interval = self.min_interval if changed else min(IDLE_POLL, interval * 1.5)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
                continue
            # Wait for damage (or the safety poll), then keep to the frame rate. Only a check:
            # the poll before the next grab drains and re-arms (one reset a round, not two).
            if not notifier.pending():
                await _readable(notifier.fileno(), DAMAGE_SAFETY_POLL)
            await asyncio.sleep(max(0.0, due - time.monotonic()))


async def _readable(fd: int, timeout: float) -> None:
    """Wait until ``fd`` is readable or ``timeout`` seconds pass.

    The reader is registered only for the wait: left registered, a connection with unread
    data (damage arriving while the loop sleeps out the frame interval) would wake the event
    loop on every iteration — a busy spin that cost several ms of CPU per frame.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    # A timer on the same future rather than wait_at_most: this runs every round of a video,
    # and awaiting a plain future keeps a cancellation as surely without asyncio.wait's
    # waiter, callbacks and set (the Python 3.11 wait_for bug is not in this path).
    loop.add_reader(fd, wake)
    timer = loop.call_later(timeout, wake)
    try:
        await ready
    finally:
        timer.cancel()
        loop.remove_reader(fd)
