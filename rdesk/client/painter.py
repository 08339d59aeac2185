"""Painting off the viewer's event loop, in order, at a bounded rate (issue 20).

Decoding and copying an update can take the viewer's CPU for seconds when a hostile host asks
for it (64 full-screen copies, a huge JPEG), and on the event loop that would stall
everything else the connection does: its keepalive pings, the pongs it answers, the input a
face sends, ``close()`` and a verb's ``--timeout``. :class:`Painter` therefore runs every
framebuffer change (updates, screen resizes, the end of a video stream) on **one worker
thread**, one at a time and in the order the host sent them, while the connection's receive
task goes on reading the host's other messages.

The work per second is bounded too, by :class:`PaintBudget` (a token bucket of
:data:`PAINT_RATE` screens a second, :data:`PAINT_BURST` at once). An update over the budget
waits: the viewer stops painting and so stops acknowledging, and a host keeping to the
protocol's flow control (docs/protocol.md §7) stops sending once its window is full — it is
slowed, not dropped. A host that keeps sending regardless has broken flow control: once
:data:`~rdesk.protocol.limits.MAX_IN_FLIGHT` updates are unacknowledged (no conforming window
is larger) the connection closes with a one-line reason. Bytes waiting to be painted are
bounded as well (:data:`MAX_QUEUED_BYTES`): beyond that the receive task stops reading, and
the websocket's own backpressure holds the host.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rdesk.client.framebuffer import UPDATE_BUDGET, Framebuffer
from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode, RemoteProtocolError
from rdesk.protocol.updates import Update

__all__ = ["MAX_QUEUED_BYTES", "PAINT_BURST", "PAINT_RATE", "PaintBudget", "Painter"]

#: Screens of pixels a viewer paints per second at most: a full repaint and a full-screen
#: scroll in every frame at the host's highest rate (60 frames/s).
PAINT_RATE = 120.0
#: Screens painted at once before the rate applies: two updates of the most one may touch.
PAINT_BURST = 2.0 * UPDATE_BUDGET
#: Bytes of updates received but not yet painted before the viewer stops reading.
MAX_QUEUED_BYTES = 2 * limits.MAX_UPDATE_MESSAGE


class PaintBudget:
    """A token bucket counted in screens: :meth:`charge` says how long to wait before the
    work may be done. Pure: the caller passes ``now``."""

    def __init__(self, now: float, rate: float = PAINT_RATE, burst: float = PAINT_BURST) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._at = now

    def charge(self, screens: float, now: float) -> float:
        """Take ``screens`` of work at ``now``; return the seconds to wait before doing it
        (0.0 within the budget). The debt carries over: work charged while waiting waits
        longer still."""
        self._level = min(self.burst, self._level + max(0.0, now - self._at) * self.rate)
        self._at = now
        self._level -= screens
        return 0.0 if self._level >= 0 else -self._level / self.rate


class _Job:
    __slots__ = ("done", "nbytes", "update", "work")

    def __init__(self, work: Callable[[], Any], done: Callable[[Any], Awaitable[None]],
                 update: Update | None, nbytes: int) -> None:
        self.work, self.done, self.update, self.nbytes = work, done, update, nbytes


class Painter:
    """Runs framebuffer work on one worker thread, in order, within a :class:`PaintBudget`.

    :meth:`put` queues a job (from the receive task); :meth:`run` is the task that does them:
    it awaits each job's ``work()`` on the worker thread, then ``done(result)`` on the loop,
    before starting the next, so faces reading the framebuffer in ``done``'s callbacks see it
    settled. :meth:`run` ends only by raising the error a job raised (a
    :class:`~rdesk.protocol.errors.ProtocolError` from the framebuffer, or the flow-control
    breach :meth:`put` found). :meth:`stop` ends the worker thread (at the next rectangle).
    """

    def __init__(self, framebuffer: Framebuffer, budget: PaintBudget) -> None:
        self.framebuffer = framebuffer
        self.budget = budget
        #: Set to tell the worker to stop between rectangles (the connection is closing).
        self.stopping = threading.Event()
        #: Times an update waited for the budget (the hostile-host test counts them).
        self.throttled = 0
        self._jobs: collections.deque[_Job] = collections.deque()
        self._wake = asyncio.Condition()
        self._unpainted = 0  # updates received and not yet acknowledged
        self._queued_bytes = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="rdesk-paint")

    async def put_update(self, update: Update, nbytes: int,
                         done: Callable[[list[tuple[int, int, int, int]]], Awaitable[None]]
                         ) -> None:
        """Queue ``update`` to be painted, then ``done(painted)`` (which acknowledges it).

        Raises ``PROTOCOL_ERROR`` if the host has more than ``MAX_IN_FLIGHT`` updates
        unacknowledged; waits while :data:`MAX_QUEUED_BYTES` are queued."""
        if self._unpainted >= limits.MAX_IN_FLIGHT:
            raise RemoteProtocolError(
                f"the host sent over {limits.MAX_IN_FLIGHT} updates without waiting for "
                f"acknowledgements (this viewer paints at most {PAINT_RATE:g} screens a "
                f"second)", CloseCode.PROTOCOL_ERROR)
        self._unpainted += 1
        await self._put(_Job(lambda: self.framebuffer.apply(update, self.stopping), done,
                             update, nbytes))

    async def put(self, work: Callable[[], Any], done: Callable[[Any], Awaitable[None]]) -> None:
        """Queue ``work()`` (run on the worker thread, after everything queued before it),
        then ``done(result)`` on the loop."""
        await self._put(_Job(work, done, None, 0))

    async def _put(self, job: _Job) -> None:
        async with self._wake:
            # Bounded memory: the receive task (and so the host) waits while too much is queued.
            await self._wake.wait_for(lambda: self._queued_bytes < MAX_QUEUED_BYTES)
            self._jobs.append(job)
            self._queued_bytes += job.nbytes
            self._wake.notify_all()

    async def run(self) -> None:
        """Do the queued jobs until cancelled or one fails (raising its error)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                async with self._wake:
                    await self._wake.wait_for(lambda: bool(self._jobs))
                    job = self._jobs.popleft()
                if job.update is not None:
                    # Checked here, not on receipt: a resize queued before it sets the size.
                    delay = self.budget.charge(self.framebuffer.screens(job.update),
                                               time.monotonic())
                    if delay > 0:
                        self.throttled += 1
                        await asyncio.sleep(delay)
                result = await loop.run_in_executor(self._executor, job.work)
                async with self._wake:
                    self._queued_bytes -= job.nbytes
                    self._wake.notify_all()
                await job.done(result)
                if job.update is not None:
                    self._unpainted -= 1
        finally:
            self.stop()

    def stop(self) -> None:
        """End the worker thread: the rectangle it paints is its last (idempotent)."""
        self.stopping.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
