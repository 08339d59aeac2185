"""What one viewer needs next: the sans-I/O planner of the host's update sender.

A :class:`Planner` holds what the host knows of one viewer's picture — the *dirty* tiles
(changed since last sent) and, in :class:`~rdesk.host.encoding.held.Held`, the pixels sent
for every tile and which of them the viewer holds only lossy (sent as JPEG, awaiting a
lossless refresh) — and decides each round what to send:
which tiles go lossy (moving, or part of a large change), which go lossless (small still
changes, and lossy tiles still for ``lossless_delay``), how much of a refresh fits the link's
budget, and whether a change is a vertical scroll to send as a copy. It encodes nothing and
sends nothing, never awaits and never reads the clock: the caller
(:class:`~rdesk.host.serve.viewer.ViewerLink`) passes ``now``, the screen's change history,
the link's budget, and what the encoder produced.

The one guarantee: no COPY is planned from pixels the host does not know the viewer holds.
A copy reads only tiles sent since the start (``Held.known``), scrolls are detected against
the pixels *sent* there (``Held.sent``), exact or lossy, and every copy moves the lossy flags
with the pixels (``Held.scrolled``), so lossy pixels may be copied but are never taken for exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rdesk.host.encoding.encode import EncodedRect
from rdesk.host.encoding.held import Held
from rdesk.host.encoding.jobs import (
    LOSSY_AREA_TILES,
    Box,
    Job,
    bands,
    fit_budget,
    refresh_pieces,
)
from rdesk.host.encoding.scrolls import (
    SCROLL_MIN_TILES,
    SCROLL_STRIP_SECONDS,
    Scroll,
    ScrollChecks,
    ScrollPlan,
    scroll_residual_lossless,
)
from rdesk.host.encoding.tiles import merge_tiles

__all__ = ["Planner", "Round"]


@dataclasses.dataclass
class Round:
    """One round's work, taken from the planner: encode ``jobs`` (in order), then
    :meth:`Planner.settle` with the result."""

    jobs: list[Job]
    #: Per job: whether the encoder may trim it to where the frame differs from
    #: ``Held.sent`` (a lossless job over tiles the viewer holds exactly).
    trim: list[bool]
    #: Lossless refresh bytes the round may send (the link's budget when it was planned).
    budget: int
    #: Tiles refreshed because they were lossy and had become still (stay lossy if cut).
    was_due: np.ndarray
    #: ``jobs[:lossy]`` are the lossy jobs (never trimmed, so also the first results): they
    #: always go, even those encoded exactly (flat content, ``encode_rect``'s exact_if_flat).
    lossy: int = 0


class Planner:
    """The host's model of one viewer's picture; see the module docstring.

    :param tiles_shape: the screen's shape in tiles (rows, columns).
    :param tile: tile side in pixels.
    :param size: the screen's (width, height) in pixels.
    :param lossless_delay: seconds a lossy tile must stay still before its lossless refresh.
    """

    def __init__(self, tiles_shape: tuple[int, int], tile: int, size: tuple[int, int],
                 lossless_delay: float) -> None:
        self.tile = tile
        self.lossless_delay = lossless_delay
        self.size = size
        #: Tiles changed since the viewer was last sent them (nothing until the first mark).
        self.dirty = np.zeros(tiles_shape, dtype=bool)
        #: What the viewer holds: the pixels sent, which tiles are known, which lossy.
        self.held = Held(tiles_shape, tile)
        #: Running estimate of lossless bytes per pixel, to size refresh rounds before encoding.
        self.lossless_bpp = 1.0
        #: Tiles a live video stream carries (rdesk/host/video/): never refreshed as tiles.
        self.video = np.zeros(tiles_shape, dtype=bool)
        #: Whether the last update was a scroll (the next round is not paced).
        self.scrolling = False
        self._checks = ScrollChecks()

    @property
    def lossy(self) -> np.ndarray:
        """Tiles the viewer holds lossy, awaiting their lossless refresh."""
        return self.held.lossy

    @property
    def exact(self) -> bool:
        """Whether the viewer holds every pixel sent exactly, with no change outstanding."""
        return not self.dirty.any() and not self.held.lossy.any()

    def resize(self, tiles_shape: tuple[int, int], size: tuple[int, int]) -> None:
        """The screen changed size: everything must be sent again, nothing is held."""
        self.size = size
        self.dirty = np.ones(tiles_shape, dtype=bool)
        self.held.reset(tiles_shape)
        self.scrolling = False
        self.video = np.zeros(tiles_shape, dtype=bool)

    # --- what the viewer needs ---------------------------------------------------------------

    def mark(self, mask: np.ndarray) -> bool:
        """Tiles changed on screen; False (and nothing marked) if ``mask`` is another shape."""
        if mask.shape != self.dirty.shape:
            return False
        self.dirty |= mask
        return True

    def sent_elsewhere(self, tiles: np.ndarray, frame: np.ndarray) -> None:
        """``tiles`` were sent to the viewer by another path (a video stream), cut from
        ``frame``: they are no longer dirty, and the viewer holds them lossy. Everything sent
        to the viewer must be recorded here or by :meth:`settle`/:meth:`settle_scroll`: a
        COPY reads what the record says the viewer holds."""
        if tiles.shape != self.dirty.shape or not tiles.any():
            return
        self.dirty &= ~tiles
        # A full-screen stream (a pan) repaints every tile: one box, without merging 510 tiles.
        boxes = ([(0, 0, *self.size)] if tiles.all()
                 else merge_tiles(tiles, self.tile, *self.size))
        self.held.record_all([(box, True) for box in boxes], frame)

    def refresh_all(self) -> None:
        """The viewer asked for everything again."""
        self.dirty[:] = True

    def refresh_due_in(self, now: float, last_change: np.ndarray) -> float | None:
        """Seconds until a lossy tile becomes due for its lossless refresh, if any."""
        waiting = self.lossy & ~self.dirty & ~self.video
        if not waiting.any():
            return None
        due = float(last_change[waiting].min()) + self.lossless_delay
        return max(0.0, due - now)

    def paced(self, moving: np.ndarray) -> bool:
        """Whether the next round waits for the frame-rate cap.

        Motion is paced; a small still change (typing) goes at once, and so does the round
        after a scroll, which may be the next scroll: a scroll's bytes are the rows it exposes
        whatever the rate, so pacing would only batch them into fewer, later updates.
        """
        return not self.scrolling and (
            bool((self.dirty & moving).any()) or int(self.dirty.sum()) >= LOSSY_AREA_TILES
        )

    def give_to_video(self, live: np.ndarray, repaint: np.ndarray, frame: np.ndarray) -> None:
        """Video streams cover ``live`` tiles, and this round's frames, cut from ``frame``,
        repaint ``repaint``: no tile encodes those, and the viewer holds them lossy
        (:meth:`sent_elsewhere`). Once a stream ends (its tiles leave ``live``) they are lossy
        tiles like any other: refreshed losslessly once still."""
        if live.shape != self.video.shape:
            return
        self.video = live.copy()
        self.sent_elsewhere(repaint, frame)

    # --- an ordinary round ---------------------------------------------------------------------

    def take_round(self, now: float, last_change: np.ndarray, moving: np.ndarray,
                   budget: int) -> Round | None:
        """Take this round's work (``None``: nothing to send). Tiles marked after this call are
        changes after the round's frame and stay dirty for the next round."""
        still = (now - last_change) >= self.lossless_delay
        due = self.lossy & ~self.dirty & still & ~self.video
        # A tile is sent lossy only if it is moving (changed twice within MOTION_GAP) or part of
        # a large change; a small, single change (a keystroke) goes lossless at once: one update
        # instead of a JPEG now and a refresh 120 ms later, and no blur at a low level.
        lossy_now = self.dirty & moving
        if int(self.dirty.sum()) >= LOSSY_AREA_TILES:
            lossy_now = self.dirty.copy()
        lossless = self._within_budget((self.dirty & ~lossy_now) | due, budget)
        if not lossy_now.any() and not lossless.any():
            return None
        self.dirty &= ~(lossy_now | lossless)
        # Lossless jobs over tiles the viewer holds exactly need only the pixels that differ
        # from what it holds (a glyph, not the tiles it touches); a refresh of lossy tiles
        # must send them whole.
        held_exact = self.held.known & ~self.held.lossy
        tile, (w, h) = self.tile, self.size
        jobs: list[Job] = [(r, False) for r in bands(merge_tiles(lossy_now, tile, w, h))]
        trim = [False] * len(jobs)
        lossy_jobs = len(jobs)
        for part, trimmable in ((lossless & held_exact, True), (lossless & ~held_exact, False)):
            refresh = refresh_pieces(merge_tiles(part, tile, w, h), budget, tile)
            jobs += [(r, True) for r in refresh]
            trim += [trimmable] * len(refresh)
        return Round(jobs, trim, budget, lossless & due, lossy=lossy_jobs)

    def settle(self, round_: Round, encoded: list[EncodedRect], frame: np.ndarray
               ) -> tuple[list[EncodedRect], bool]:
        """What to send of a round's ``encoded`` rects, and whether the last update is exact.

        Lossless rects over the budget are left for later rounds, their tiles put back where
        they came from (dirty if they were a change, still lossy if a refresh); the lossy jobs'
        rects always go, exact or not. What is kept is recorded as held: the viewer will hold
        ``frame``'s pixels there, exactly or lossy.
        """
        self.learn_lossless_size(encoded)
        kept, left = fit_budget(encoded[round_.lossy:], round_.budget)
        kept = encoded[: round_.lossy] + kept
        for enc in left:
            rows, cols = self.held.tiles_of((enc.x, enc.y, enc.w, enc.h))
            self.dirty[rows, cols] |= ~round_.was_due[rows, cols]
        boxes = [((enc.x, enc.y, enc.w, enc.h), not enc.exact) for enc in kept]
        self.held.record_all(boxes, frame)
        for box, lossy in boxes:
            if not lossy:  # whole tiles (a lossy job's too), or trimmed within exact tiles
                self.held.refreshed(box)
        # A large change or motion ends a run of scrolls; a small lossless round between two
        # (a line typed, a refresh) does not: the next scroll would wait for the cap's slot.
        if round_.lossy:
            self.scrolling = False
        return kept, self.exact

    def _within_budget(self, lossless: np.ndarray, budget: int) -> np.ndarray:
        """The tiles of ``lossless`` to refresh this round: as many as the budget allows.

        The rest stay dirty or lossy, and go in later rounds: a large lossless refresh on a
        slow link is spread out rather than sent as one burst that would queue for seconds.
        """
        count = int(lossless.sum())
        if count == 0:
            return lossless
        tile_bytes = self.lossless_bpp * self.tile * self.tile
        allowed = max(1, int(budget / tile_bytes))
        if count <= allowed:
            return lossless
        picked = np.zeros_like(lossless)
        rows, cols = np.nonzero(lossless)
        picked[rows[:allowed], cols[:allowed]] = True
        return picked

    def learn_lossless_size(self, encoded: list[EncodedRect]) -> None:
        """Fold the bytes per pixel of the exact rects in ``encoded`` into the estimate."""
        pixels = sum(e.w * e.h for e in encoded if e.exact)
        if pixels:
            nbytes = sum(len(e.payload) for e in encoded if e.exact)
            self.lossless_bpp += 0.5 * (nbytes / pixels - self.lossless_bpp)

    # --- scrolls -------------------------------------------------------------------------------

    def scroll_region(self, frame: np.ndarray) -> Box | None:
        """The band a scroll would be looked for in (against ``held.sent``), or ``None``: the
        change is too small to be worth checking, checks are backing off after misses
        (``scrolls.SCROLL_SKIP_MAX``), or the band holds a tile never sent (a copy may only read
        what the viewer is known to hold)."""
        sent = self.held.sent
        if sent is None or sent.shape != frame.shape or int(self.dirty.sum()) < SCROLL_MIN_TILES:
            return None
        if self._checks.skipping():
            return None
        rows = np.nonzero(self.dirty.any(axis=1))[0]
        y0, y1 = int(rows[0]) * self.tile, min(int(rows[-1] + 1) * self.tile, frame.shape[0])
        if not self.held.copyable(y0, y1 - y0):
            return None
        return (0, y0, frame.shape[1], y1 - y0)

    def scroll_missed(self) -> None:
        """A scroll check found none: back off (see ``scrolls.SCROLL_SKIP_MAX``)."""
        self._checks.missed()

    def take_dirty(self) -> np.ndarray:
        """Take every dirty tile (for a scroll check); :meth:`give_back` if it is none."""
        taken, self.dirty = self.dirty, np.zeros_like(self.dirty)
        return taken

    def give_back(self, taken: np.ndarray) -> None:
        self.dirty |= taken

    def scroll(self, plan: ScrollPlan, carry_rate: float, budget: int = 0) -> Scroll:
        """The jobs of a scroll found by :func:`~rdesk.host.encoding.scrolls.plan_scroll`
        (from ``held.sent``): the strip,
        then as many lossy tiles the copy moves as ``budget`` (refresh bytes) allows.

        The exposed strip goes lossless, so it needs no refresh later, as long as it is not too
        large for the screen or for the link: one the link cannot carry within
        SCROLL_STRIP_SECONDS at ``carry_rate`` (its best rate, bytes/s) goes lossy (and small)
        instead, is recorded lossy, and is copied on as lossy by later scrolls until it is
        refreshed once still. (Not the congestion-cut refresh budget: the exposed rows cost
        the same bytes however they are batched.)

        The moved lossy tiles are refreshed now rather than once still: on a scrolling screen
        nothing is still, but a tile refreshed exactly stays exact as later scrolls copy it on,
        so the refresh is not wasted as it would be on motion.
        """
        residual, exposed = plan.residual, plan.exposed
        area = sum(w * h for _, _, w, h in exposed)
        lossless = scroll_residual_lossless(int(residual.sum()), residual.size) and (
            self.lossless_bpp * area <= carry_rate * SCROLL_STRIP_SECONDS
        )
        if lossless:
            jobs: list[Job] = [(r, True) for r in exposed]
        else:
            jobs = [(r, False) for r in bands(merge_tiles(residual, self.tile, *self.size))]
        refresh_from = len(jobs)
        if budget > 0:
            lossy, _ = self.held.flags_after_copy(plan.src_y, plan.copy.y, plan.copy.h)
            # A strip sent lossless leaves its tiles lossy where the copy brought lossy rows:
            # they are refreshed whole (over the strip, a few rows sent twice); a lossy strip's
            # tiles are not (they were just sent lossy, for want of bytes).
            candidates = (lossy if lossless else lossy & ~residual) & ~self.video
            due = self._within_budget(candidates, budget)
            rects = refresh_pieces(merge_tiles(due, self.tile, *self.size), budget, self.tile)
            jobs += [(r, True) for r in rects]
        return Scroll(plan, jobs, lossless, refresh_from)

    def settle_scroll(self, scroll: Scroll, encoded: list[EncodedRect], frame: np.ndarray
                      ) -> bool:
        """Record a scroll about to be sent (the copy, then ``encoded``); whether its update
        leaves the viewer exact. Lossy tiles the copy moved stay lossy where they land."""
        self.learn_lossless_size(encoded)
        copy = scroll.copy
        if copy.x != 0 or copy.w != frame.shape[1]:
            raise ValueError("a scroll's copy spans the screen's width")
        self.held.scrolled(scroll.plan.src_y, copy.y, copy.h,
                           [((e.x, e.y, e.w, e.h), not e.exact) for e in encoded], frame)
        # Whole tiles of the frame, exact now: the refresh, and a strip sent as lossy jobs that
        # came out exact (flat content); a lossless strip is trimmed, not whole tiles.
        for e in encoded[scroll.refresh_from if scroll.lossless else 0 :]:
            if e.exact:
                self.held.refreshed((e.x, e.y, e.w, e.h))
        self.scrolling = True
        self._checks.found()
        return self.exact


