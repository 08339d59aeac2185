"""One connected viewer on the host: its dirty set, its lossy set, and its update sender.

Each viewer keeps its own *dirty set* — tiles changed since it was last sent them — and its
own in-flight window (``session.flow``). When the window has room, :meth:`ViewerLink.run`
encodes the **current** pixels of every dirty tile and sends them as one update, so a slow
viewer sees fewer frames, never stale ones, and never slows another (DESIGN.md).

Tiles that are moving go lossy (JPEG at the viewer's quality); a lossy tile that then stays
still for ``lossless_delay`` is sent again losslessly, and the update that leaves no lossy and
no dirty tile behind carries the ``exact`` flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import numpy as np

from rdesk.host.encode import EncodeCache, EncodedRect
from rdesk.host.source import ScreenSource
from rdesk.host.tiles import merge_tiles
from rdesk.protocol import limits
from rdesk.protocol.messages import Rect, Screen, Update
from rdesk.protocol.session import Session

__all__ = ["ViewerLink"]

#: Tiles at least this large in total are worth a lossy first pass even when not moving.
LOSSY_AREA_TILES = 48
#: Bytes of payload per update before the rest goes into another update.
UPDATE_BUDGET = limits.MAX_UPDATE_MESSAGE // 2


#: Tallest rectangle encoded in one piece: bounds one payload, and lets updates stream.
BAND_HEIGHT = 256


def _bands(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Split rectangles into horizontal bands at most :data:`BAND_HEIGHT` tall."""
    out = []
    for x, y, w, h in rects:
        for top in range(y, y + h, BAND_HEIGHT):
            out.append((x, top, w, min(BAND_HEIGHT, y + h - top)))
    return out


class ViewerLink:
    """The host's state for one authenticated viewer.

    :param send: coroutine that writes one frame to this viewer's websocket.
    """

    def __init__(
        self,
        viewer_id: int,
        name: str,
        role: str,
        session: Session,
        source: ScreenSource,
        cache: EncodeCache,
        send: Callable[[str | bytes], Awaitable[None]],
        *,
        quality: int,
        lossless_delay: float,
    ) -> None:
        self.viewer_id = viewer_id
        self.name = name
        self.role = role
        self.session = session
        self.source = source
        self.cache = cache
        self.quality = quality
        self.scale = 1.0
        self.lossless_delay = lossless_delay
        self._send = send
        self._wake = asyncio.Event()
        self._size = (source.width, source.height)
        self.dirty = np.zeros(source.tiles_shape, dtype=bool)
        self.lossy = np.zeros(source.tiles_shape, dtype=bool)
        self._seq = 0
        #: Updates and payload bytes sent, for statistics and tests.
        self.updates_sent = 0
        self.bytes_sent = 0

    # --- called by the source and the connection handler ---------------------------------------

    def mark(self, mask: np.ndarray) -> None:
        if mask.shape == self.dirty.shape:
            self.dirty |= mask
            self._wake.set()

    def resized(self) -> None:
        self._wake.set()

    def refresh(self) -> None:
        """The viewer asked for everything again."""
        self.dirty[:] = True
        self._wake.set()

    def acked(self) -> None:
        """An acknowledgement arrived: the window may have room now."""
        self._wake.set()

    # --- the sender ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Send updates until cancelled or the connection fails (the exception propagates)."""
        while True:
            if not self.session.flow.can_send():
                # Only an ack can make room: wait for one, whatever timers are due. (Looping
                # on an overdue refresh here would spin and starve every other viewer.)
                self._wake.clear()
                await self._wake.wait()
                continue
            timeout = self._refresh_due_in(time.monotonic())
            if timeout is None or timeout > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if not self.session.flow.can_send():
                continue  # the next ack wakes us
            if (self.source.width, self.source.height) != self._size:
                await self._send_resize()
            await self._send_pending(time.monotonic())

    def _refresh_due_in(self, now: float) -> float | None:
        """Seconds until a lossy tile becomes due for its lossless refresh, if any."""
        waiting = self.lossy & ~self.dirty
        if not waiting.any():
            return None
        due = float(self.source.last_change[waiting].min()) + self.lossless_delay
        return max(0.0, due - now)

    async def _send_resize(self) -> None:
        self._size = (self.source.width, self.source.height)
        shape = self.source.tiles_shape
        self.dirty = np.ones(shape, dtype=bool)
        self.lossy = np.zeros(shape, dtype=bool)
        await self._send(self.session.send(Screen(*self._size), time.monotonic()))

    async def _send_pending(self, now: float) -> None:
        source = self.source
        frame, frame_id = source.frame, source.frame_id
        if frame.shape[1::-1] != self._size:
            return  # resized under us; the next round sends the Screen message first
        still = (now - source.last_change) >= self.lossless_delay
        due = self.lossy & ~self.dirty & still
        moving = self.dirty & (source.moving | ~still)
        if int(self.dirty.sum()) >= LOSSY_AREA_TILES:
            moving = self.dirty.copy()
        lossless = (self.dirty & ~moving) | due
        if not moving.any() and not lossless.any():
            return
        # Take the work before awaiting: tiles marked while we encode stay dirty for next time.
        self.dirty &= ~(moving | lossless)
        self.lossy = (self.lossy & ~lossless) | moving
        tile, (w, h) = source.tile, self._size
        jobs = [(r, False) for r in _bands(merge_tiles(moving, tile, w, h))]
        jobs += [(r, True) for r in _bands(merge_tiles(lossless, tile, w, h))]
        encoded = await asyncio.to_thread(self._encode_all, frame, frame_id, jobs)
        exact = not self.dirty.any() and not self.lossy.any()
        await self._send_rects(encoded, exact, now)

    def _encode_all(
        self, frame: np.ndarray, frame_id: int, jobs: list[tuple[tuple[int, int, int, int], bool]]
    ) -> list[EncodedRect]:
        return [
            self.cache.get(frame_id, frame, rect, lossless=lossless, quality=self.quality,
                           scale=1.0 if lossless else self.scale)
            for rect, lossless in jobs
        ]

    async def _send_rects(self, encoded: list[EncodedRect], exact: bool, now: float) -> None:
        batch: list[Rect] = []
        size = 0
        for i, enc in enumerate(encoded):
            batch.append(Rect(enc.x, enc.y, enc.w, enc.h, enc.encoding, enc.payload))
            size += len(enc.payload)
            last = i == len(encoded) - 1
            if last or size >= UPDATE_BUDGET or len(batch) >= limits.MAX_RECTS_PER_UPDATE:
                while not self.session.flow.can_send():  # a big refresh spans several updates
                    self._wake.clear()
                    await self._wake.wait()
                update = Update(self._seq, int(now * 1e6), tuple(batch), exact=exact and last)
                self._seq += 1
                frame = self.session.send(update, time.monotonic())
                await self._send(frame)
                self.updates_sent += 1
                self.bytes_sent += len(frame)
                batch, size = [], 0
