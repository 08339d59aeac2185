"""One connected viewer on the host: its dirty set, its lossy set, and its update sender.

Each viewer keeps its own *dirty set* — tiles changed since it was last sent them — and its
own in-flight window (``session.flow``). When the window has room, :meth:`ViewerLink.run`
encodes the **current** pixels of every dirty tile and sends them as one update, so a slow
viewer sees fewer frames, never stale ones, and never slows another (DESIGN.md).

Tiles that are moving go lossy (JPEG at the viewer's quality); a lossy tile that then stays
still for ``lossless_delay`` is sent again losslessly, and the update that leaves no lossy and
no dirty tile behind carries the ``exact`` flag.

Bandwidth adaptation (docs/adaptation.md): each link owns a
:class:`~rdesk.protocol.controller.Controller` fed by the acknowledgements of its updates. It
sets the JPEG quality and downscale of moving tiles, the byte window in flight, and the
earliest time the next update may leave (frame-rate and bandwidth caps). Lossless refreshes
of still regions are cut into rounds that fit the controller's refresh budget, so a large
refresh never builds a queue on a slow link.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rdesk.host.encoding.encode import EncodeCache, EncodedRect, split_rect
from rdesk.host.encoding.tiles import changed_box, detect_vertical_scroll, dirty_tiles, merge_tiles
from rdesk.host.screen.source import ScreenSource
from rdesk.protocol import limits
from rdesk.protocol.access import Access
from rdesk.protocol.codec import copy_payload
from rdesk.protocol.controller import MIN_WINDOW_BYTES, Caps, Controller
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.flow import Sample
from rdesk.protocol.messages import Rect, Screen, Update
from rdesk.protocol.session import Session

__all__ = ["ViewerLink"]

#: Tiles at least this large in total are worth a lossy first pass even when not moving.
LOSSY_AREA_TILES = 48
#: Changes at least this large are checked for a vertical scroll (sent as a copy).
SCROLL_MIN_TILES = 24
#: A scroll's residual (the newly exposed strip) goes lossless up to this fraction of the
#: screen: a lossy residual would end the chain of copies, since a copy is only ever made from
#: a picture the viewer holds exactly.
SCROLL_LOSSLESS_FRACTION = 0.25
#: ... and only if the link carries it within this many seconds at its best measured rate.
SCROLL_STRIP_SECONDS = 0.5
#: Below this refresh budget (bytes per round) lossless rects are cut into pieces of at most
#: 4 x 1 tiles, so a round can stop at the budget instead of sending a whole band.
SMALL_REFRESH_BUDGET = 256 * 1024
#: Bytes of payload per update before the rest goes into another update.
UPDATE_BUDGET = limits.MAX_UPDATE_MESSAGE // 2


#: Tallest rectangle encoded in one piece: bounds one payload, and lets bands encode in parallel.
BAND_HEIGHT = 256
#: Threads one update's rectangles are encoded on side by side. The JPEG encoder (simplejpeg)
#: releases the GIL, so a full-screen frame's bands use every core.
ENCODE_WORKERS = max(1, min(4, os.cpu_count() or 1))
#: The threads that encode a round's other groups beside the executor thread running it.
_HELPERS = ThreadPoolExecutor(max(1, ENCODE_WORKERS - 1), thread_name_prefix="rdesk-encode")

Job = tuple[tuple[int, int, int, int], bool]


def scroll_residual_lossless(tiles: int, screen_tiles: int) -> bool:
    """Whether a scroll's residual of ``tiles`` goes lossless (keeping the copy chain alive):
    up to :data:`SCROLL_LOSSLESS_FRACTION` of the screen, and never less than a change that
    would go lossless anyway (:data:`LOSSY_AREA_TILES`)."""
    return tiles < max(LOSSY_AREA_TILES, SCROLL_LOSSLESS_FRACTION * screen_tiles)


def _share_out(jobs: list[Job], parts: int) -> list[list[int]]:
    """Indices of ``jobs`` dealt into at most ``parts`` groups of about equal pixel area."""
    groups: list[list[int]] = [[] for _ in range(min(parts, len(jobs)))]
    loads = [0] * len(groups)
    for i in sorted(range(len(jobs)), key=lambda i: -jobs[i][0][2] * jobs[i][0][3]):
        lightest = loads.index(min(loads))
        groups[lightest].append(i)
        loads[lightest] += jobs[i][0][2] * jobs[i][0][3]
    return groups


def _bands(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Split rectangles into horizontal bands at most :data:`BAND_HEIGHT` tall."""
    return [band for r in rects for band in split_rect(r, r[2], BAND_HEIGHT)]


class ViewerLink:
    """The host's state for one authenticated viewer.

    :param send: coroutine that writes one frame to this viewer's websocket.
    """

    def __init__(
        self,
        viewer_id: int,
        name: str,
        access: Access,
        session: Session,
        source: ScreenSource,
        cache: EncodeCache,
        send: Callable[[str | bytes], Awaitable[None]],
        *,
        quality: int,
        lossless_delay: float,
        max_fps: float = 60.0,
        max_bandwidth: float | None = None,
    ) -> None:
        self.viewer_id = viewer_id
        self.name = name
        self.access = access
        self.session = session
        self.source = source
        self.cache = cache
        #: The host's caps; the viewer's :meth:`set_prefs` may only lower them.
        self.host_caps = Caps(quality, max_fps, max_bandwidth)
        self.controller = Controller(self.host_caps, now=time.monotonic())
        session.flow.listener = self._on_sample
        #: Running estimate of lossless bytes per pixel, to size refresh rounds before encoding.
        self._lossless_bpp = 1.0
        self.lossless_delay = lossless_delay
        self._send = send
        self._wake = asyncio.Event()
        self._size = (source.width, source.height)
        self.dirty = np.zeros(source.tiles_shape, dtype=bool)
        #: The frame the viewer's framebuffer equals, when its last update was exact.
        self._exact_frame: np.ndarray | None = None
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

    @property
    def quality(self) -> int:
        """JPEG quality for moving tiles now (the controller's choice)."""
        return self.controller.quality

    @property
    def scale(self) -> float:
        """Downscale factor for moving tiles now (1, 1/2 or 1/4)."""
        return self.controller.scale

    def set_prefs(self, quality: int, max_fps: int, max_bandwidth: int) -> None:
        """The viewer's preferences (0 = automatic) lower the host's caps, never raise them."""
        host = self.host_caps
        bandwidths = [b for b in (host.max_bandwidth, float(max_bandwidth or 0)) if b]
        self.controller.set_caps(
            Caps(
                min(host.max_quality, quality) if quality else host.max_quality,
                min(host.max_fps, max_fps) if max_fps else host.max_fps,
                min(bandwidths) if bandwidths else None,
            )
        )
        self._wake.set()

    def _on_sample(self, now: float, sample: Sample) -> None:
        self.controller.on_ack(now, sample.rtt, sample.nbytes)
        self.session.flow.window_bytes = self.controller.window_bytes(now)

    def acked(self) -> None:
        """An acknowledgement arrived: the window may have room now."""
        self._wake.set()
        self.source.room()

    def ready(self) -> bool:
        """Whether an update could be sent now (the source defers grabs until one could)."""
        return self.session.flow.can_send()

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
            now = time.monotonic()
            self.controller.update(now)
            # The frame-rate cap paces motion; a small still change (typing) goes at once, and
            # so does a round while the viewer holds an exact picture, which may be a scroll:
            # a scroll's bytes are the rows it exposes whatever the rate, so pacing would only
            # batch them into fewer, later updates (the byte window still bounds the queue).
            busy = self._exact_frame is None and (
                bool((self.dirty & self.source.moving).any())
                or int(self.dirty.sum()) >= LOSSY_AREA_TILES
            )
            wait = self.controller.next_send_at(now, frame_rate=busy) - now
            if wait > 0:  # frame-rate or bandwidth cap: changes keep accumulating meanwhile
                await asyncio.sleep(wait)
                now = time.monotonic()
            await self._send_pending(now)

    def _refresh_due_in(self, now: float) -> float | None:
        """Seconds until a lossy tile becomes due for its lossless refresh, if any."""
        waiting = self.lossy & ~self.dirty
        if not waiting.any():
            return None
        due = float(self.source.last_change[waiting].min()) + self.lossless_delay
        return max(0.0, due - now)

    async def _send_resize(self) -> None:
        self._exact_frame = None
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
        if await self._send_scroll(frame, frame_id, now):
            return
        still = (now - source.last_change) >= self.lossless_delay
        due = self.lossy & ~self.dirty & still
        # A tile is sent lossy only if it is moving (changed twice within MOTION_GAP) or part
        # of a large change; a small, single change (a keystroke) goes lossless at once: one
        # update instead of a JPEG now and a refresh 120 ms later, and no blur at a low level.
        moving = self.dirty & source.moving
        if int(self.dirty.sum()) >= LOSSY_AREA_TILES:
            moving = self.dirty.copy()
        lossless = self._within_budget((self.dirty & ~moving) | due, now)
        if not moving.any() and not lossless.any():
            return
        # Take the work before awaiting: tiles marked while we encode stay dirty for next time.
        self.dirty &= ~(moving | lossless)
        self.lossy = (self.lossy & ~lossless) | moving
        # Whether, once this is sent, the viewer holds exactly ``frame`` (marks arriving while
        # we encode are changes *after* ``frame``, so they do not count against it).
        complete = not self.dirty.any() and not self.lossy.any()
        tile, (w, h) = source.tile, self._size
        jobs = [(r, False) for r in _bands(merge_tiles(moving, tile, w, h))]
        budget = self.controller.refresh_budget(now)
        refresh = _bands(merge_tiles(lossless, tile, w, h))
        if budget < SMALL_REFRESH_BUDGET:
            refresh = [p for r in refresh for p in split_rect(r, 4 * tile, tile)]
        jobs += [(r, True) for r in refresh]
        # A viewer whose picture is exactly ``_exact_frame`` (so no tile of it is lossy) needs
        # only the pixels that differ from it: a glyph, not the four tiles it touches.
        encoded = await self._encode_all(frame, frame_id, jobs, base=self._exact_frame)
        self._learn_lossless_size(encoded)
        fitted = self._fit_budget(encoded, budget, was_due=lossless & due)
        complete = complete and len(fitted) == len(encoded)
        encoded = fitted
        exact = not self.dirty.any() and not self.lossy.any()
        if encoded:
            await self._send_rects(encoded, exact, now)
        # (Nothing to send: the dirty tiles came back to what the viewer holds.)
        self._exact_frame = frame if complete and all(e.exact for e in encoded) else None

    async def _send_scroll(self, frame: np.ndarray, frame_id: int, now: float) -> bool:
        """Send a vertical scroll as a copy of pixels the viewer already has, if it is one.

        Only from :attr:`_exact_frame`, the frame the viewer's framebuffer is known to equal
        (its last update was ``exact``): a copy out of a lossy or stale framebuffer would
        spread its errors. The copy goes first in the update; then the tiles where the
        copied picture still differs from the screen (the newly exposed strip) follow.
        Returns False, having sent nothing, when this is not a scroll.
        """
        base = self._exact_frame
        if base is None or base.shape != frame.shape or int(self.dirty.sum()) < SCROLL_MIN_TILES:
            return False
        tile = self.source.tile
        rows = np.nonzero(self.dirty.any(axis=1))[0]
        y0, y1 = int(rows[0]) * tile, min(int(rows[-1] + 1) * tile, frame.shape[0])
        width = frame.shape[1]
        # Take the work before awaiting: tiles marked meanwhile changed after ``frame`` and
        # must stay dirty; if this is no scroll, the work is given back.
        taken, self.dirty = self.dirty, np.zeros_like(self.dirty)
        plan = await asyncio.to_thread(_plan_scroll, base, frame, (0, y0, width, y1 - y0), tile)
        if plan is None:
            self.dirty |= taken
            return False
        # The copy plus the residual tiles cover every difference between base and frame;
        # after the copy the viewer holds ``predicted``, so only the pixels of the residual
        # that differ from it (the exposed rows, not whole tiles) need be sent.
        copy, residual, exposed = plan
        area = sum(w * h for _, _, w, h in exposed)
        # Lossless keeps the chain of copies going, as long as the strip is not too large
        # for the screen or for the link: one the link cannot carry within
        # SCROLL_STRIP_SECONDS at its best rate goes lossy (and small) instead. (Not the
        # congestion-cut refresh budget: the exposed rows cost the same bytes however they
        # are batched, so a lossy fallback would only lose the chain, not save bytes.)
        link = max(float(MIN_WINDOW_BYTES), self.controller.carry_rate(now))
        lossless = scroll_residual_lossless(int(residual.sum()), residual.size) and (
            self._lossless_bpp * area <= link * SCROLL_STRIP_SECONDS
        )
        if lossless:
            jobs = [(r, True) for r in exposed]
        else:
            jobs = [(r, False) for r in _bands(merge_tiles(residual, tile, *self._size))]
        encoded = await self._encode_all(frame, frame_id, jobs)
        self._learn_lossless_size(encoded)
        if not lossless:
            self.lossy |= residual
        complete = lossless and all(e.exact for e in encoded)
        await self._send_rects([copy, *encoded], complete and not self.dirty.any(), now)
        self._exact_frame = frame if complete else None
        return True

    def _within_budget(self, lossless: np.ndarray, now: float) -> np.ndarray:
        """The tiles of ``lossless`` to refresh this round: as many as the budget allows.

        The rest stay dirty or lossy, and go in later rounds: a large lossless refresh on a
        slow link is spread out rather than sent as one burst that would queue for seconds.
        """
        count = int(lossless.sum())
        if count == 0:
            return lossless
        tile_bytes = self._lossless_bpp * self.source.tile * self.source.tile
        allowed = max(1, int(self.controller.refresh_budget(now) / tile_bytes))
        if count <= allowed:
            return lossless
        picked = np.zeros_like(lossless)
        rows, cols = np.nonzero(lossless)
        picked[rows[:allowed], cols[:allowed]] = True
        return picked

    def _fit_budget(self, encoded: list[EncodedRect], budget: int, was_due: np.ndarray
                    ) -> list[EncodedRect]:
        """:func:`fit_budget`, with the tiles of the rects left out put back where they came
        from: lossy again if they were a refresh (``was_due``), dirty again if a change."""
        kept, left = fit_budget(encoded, budget)
        tile = self.source.tile
        for enc in left:
            rows = slice(enc.y // tile, (enc.y + enc.h - 1) // tile + 1)
            cols = slice(enc.x // tile, (enc.x + enc.w - 1) // tile + 1)
            self.lossy[rows, cols] |= was_due[rows, cols]
            self.dirty[rows, cols] |= ~was_due[rows, cols]
        return kept

    def _learn_lossless_size(self, encoded: list[EncodedRect]) -> None:
        pixels = sum(e.w * e.h for e in encoded if e.exact)
        if pixels:
            nbytes = sum(len(e.payload) for e in encoded if e.exact)
            self._lossless_bpp += 0.5 * (nbytes / pixels - self._lossless_bpp)

    async def _encode_all(self, frame: np.ndarray, frame_id: int, jobs: list[Job],
                          base: np.ndarray | None = None) -> list[EncodedRect]:
        """Encode ``jobs`` (rect, lossless) in worker threads; results in the jobs' order.

        With ``base``, pixels the viewer is known to hold exactly, each lossless rect is first
        trimmed to where ``frame`` differs from ``base``, and left out if it does nowhere.
        """
        quality, scale = self.quality, self.scale

        def encode(indices: list[int]) -> list[tuple[int, EncodedRect]]:
            out = []
            for i in indices:
                rect: tuple[int, int, int, int] | None = jobs[i][0]
                lossless = jobs[i][1]
                if lossless and base is not None:
                    rect = changed_box(base, frame, jobs[i][0])
                if rect is not None:
                    out.append((i, self.cache.get(frame_id, frame, rect, lossless=lossless,
                                                  quality=quality,
                                                  scale=1.0 if lossless else scale)))
            return out

        groups = _share_out(jobs, ENCODE_WORKERS)

        def encode_groups() -> list[tuple[int, EncodedRect]]:
            # One executor job per round, fanning out from its thread: the event loop is woken
            # once per round rather than once per group.
            helpers = [_HELPERS.submit(encode, g) for g in groups[1:]]
            try:
                done = encode(groups[0]) if groups else []
            finally:
                parts = [f.result() for f in helpers]  # never leave a helper running alone
            return done + [p for part in parts for p in part]

        results = await asyncio.get_running_loop().run_in_executor(None, encode_groups)
        return [enc for _, enc in sorted(results, key=lambda p: p[0])]

    async def _send_rects(self, encoded: list[EncodedRect], exact: bool, now: float) -> None:
        """Send ``encoded`` as one round of updates; ``now`` is when its pixels were taken."""
        self.controller.on_round(now)
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
                sent_at = time.monotonic()
                frame = self.session.send(update, sent_at)
                self.controller.on_sent(sent_at, len(frame))
                await self._send(frame)
                self.updates_sent += 1
                self.bytes_sent += len(frame)
                batch, size = [], 0


def fit_budget(encoded: list[EncodedRect], budget: int
               ) -> tuple[list[EncodedRect], list[EncodedRect]]:
    """Split a round into what is sent now and the lossless rects left for later rounds.

    Lossy rects (and copies) always go. Lossless ones go in order while their bytes fit
    ``budget``; the first always goes, so every round makes progress. The round was sized from
    a running bytes-per-pixel figure, which content unlike the last (noise or a photo after
    text: 30x more bytes a pixel) can badly underestimate; this is the check after encoding.
    """
    kept: list[EncodedRect] = []
    left: list[EncodedRect] = []
    used = 0
    for enc in encoded:
        if enc.exact and enc.encoding is not Encoding.COPY:
            if used and used + len(enc.payload) > budget:
                left.append(enc)
                continue
            used += len(enc.payload)
        kept.append(enc)
    return kept, left


def _plan_scroll(
    base: np.ndarray, frame: np.ndarray, region: tuple[int, int, int, int], tile: int
) -> tuple[EncodedRect, np.ndarray, list[tuple[int, int, int, int]]] | None:
    """The copy that turns ``base`` into most of ``frame`` within ``region``; the tiles where
    the copied picture still differs from ``frame``; and, within those, the bands of pixels
    that differ. ``None`` if the change is not a vertical scroll."""
    x, y, w, h = region
    size = (frame.shape[1], frame.shape[0])
    dy = detect_vertical_scroll(base, frame, region)
    if not dy or abs(dy) >= h:
        return None
    if dy > 0:  # content moved down
        src_y, dst_y = y, y + dy
    else:
        src_y, dst_y = y - dy, y
    height = h - abs(dy)
    predicted = base.copy()
    predicted[dst_y : dst_y + height, x : x + w] = base[src_y : src_y + height, x : x + w]
    residual = dirty_tiles(predicted, frame, tile)
    copy = EncodedRect(x, dst_y, w, height, Encoding.COPY, copy_payload(x, src_y), exact=True)
    exposed = [changed_box(predicted, frame, r) for r in _bands(merge_tiles(residual, tile, *size))]
    return copy, residual, [r for r in exposed if r is not None]
