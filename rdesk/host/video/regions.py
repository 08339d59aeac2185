"""Where the video is: the sans-I/O detection of regions that change in most frames.

Modelled on Xpra's video-region detection: a tile is *hot* when it changed in most of the
screen's change events over the last :data:`WINDOW` seconds (and at least :data:`MIN_CHANGES`
times), or when its last :data:`FAST_STREAK` changes came each within :data:`FAST_GAP` of
the one before (motion at video rates, from its first frames); a 4-connected group of hot
tiles at least :data:`MIN_TILES_SIDE` tiles a side, whose content passes the caller's
``accept`` check (photo-like, so a scrolling terminal stays tiles and COPY), becomes a
region. Hysteresis keeps it from flapping: a region only grows while it lives (to the
bounding box of the hot tiles that touch it) and it ends only once none of its tiles changed
for :data:`END_AFTER` seconds. Rectangles are tile-aligned, clipped to the screen and cut to
even sides (4:2:0 video). Nothing here reads the clock.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

import numpy as np

from rdesk.protocol.video import MAX_VIDEO_STREAMS, MIN_VIDEO_SIDE

__all__ = [
    "END_AFTER",
    "FAST_GAP",
    "BECOMING_STREAK",
    "FAST_STREAK",
    "MIN_CHANGES",
    "MIN_TILES_SIDE",
    "WINDOW",
    "Region",
    "RegionDetector",
    "components",
]

Box = tuple[int, int, int, int]
#: Seconds of change history a tile's heat is counted over.
WINDOW = 1.0
#: Changes within the window below which a tile is never hot (under 8 frames a second is
#: not motion video is for; tiles and the lossless refresh do better).
MIN_CHANGES = 8
#: ... and the fraction of the screen's change events in the window it must have changed in.
HOT_FRACTION = 0.5
#: Or: a tile is hot at once when its last FAST_STREAK changes each followed the one before
#: within FAST_GAP seconds (at least about 7 frames a second, 6 frames running: 0.17 s of a
#: 30 fps pan). At the start of full-screen photo motion over 10 Mbit/30 ms, MIN_CHANGES alone
#: was reached at the second round after the first or only at the third: two JPEGs of 190 kB
#: (150 ms on the wire each, the frames between them lost) before the key unit, 14 updates in
#: that second against 30 in each one after it. Not fewer than 6: the round after the first
#: picture comes 0.1-0.14 s in (3-5 frames), and that round's full-scale JPEG is what measures
#: the link the stream's bitrate is chosen from; a stream started before it (a streak of 3)
#: began at a third of the link and stayed there for seconds. A false start costs little: a
#: key unit is smaller than the full-scale JPEG it replaces, and a region still for END_AFTER
#: ends.
FAST_STREAK = 6
FAST_GAP = 0.15
#: Changes a streak may run outside any region and still count as a region *becoming* video
#: (:meth:`RegionDetector.becoming`): the streak's own length, and a round for the check of
#: its content. Past that, motion that did not become video (not photo-like, no free stream)
#: is just tiles again.
BECOMING_STREAK = FAST_STREAK + 1
#: Smallest region, in tiles a side (128 pixels with 64-pixel tiles).
MIN_TILES_SIDE = 2
#: A region none of whose tiles changed for this long ends.
END_AFTER = 0.5
#: Rectangles whose tile masks are kept (a few regions, each at a few sizes).
MAX_MASKS_KEPT = 8


@dataclasses.dataclass
class Region:
    """One live video region: its stream number, pixel rectangle and tile box."""

    stream: int
    rect: Box
    #: (row0, col0, row1, col1), inclusive, of the tiles the rectangle covers.
    tiles: Box
    started: float


def components(hot: np.ndarray) -> list[Box]:
    """The bounding boxes (row0, col0, row1, col1, inclusive) of the 4-connected groups of
    True tiles in ``hot``, in the row-major order of each group's first tile.

    Works on runs of True tiles in each row, joined (union-find) where runs of adjacent rows
    share a column: a loop over runs, not tiles, and the runs of every row found in one numpy
    pass. It runs every round of a viewer that declared video, and a screen of tiles that are
    all hot but not video (a scrolling terminal, a latency benchmark's full-window flashes)
    cost 2 ms of CPU a round flooded tile by tile, 0.2 ms with each row's runs found apart (a
    third of a video round's planning at 1080p), 0.03 ms so.
    """
    if not hot.any():
        return []
    rows, cols = hot.shape
    edges = np.zeros((rows, cols + 1), dtype=np.int8)
    edges[:, :cols] = hot
    edges[:, 1:] -= hot.astype(np.int8)
    # Row-major order: each row's starts (+1) and ends (-1, one past the run) pair up in turn.
    start_rows, start_cols = np.nonzero(edges == 1)
    _, stop_cols = np.nonzero(edges == -1)
    runs: list[tuple[int, int, int]] = list(zip(  # (row, first column, last column)
        start_rows.tolist(), start_cols.tolist(), (stop_cols - 1).tolist(), strict=True))
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    above: list[int] = []  # the runs of the row before
    here: list[int] = []
    row = -1
    for i, (r, start, last) in enumerate(runs):
        if r != row:
            above, here, row = (here if r == row + 1 else []), [], r
        here.append(i)
        for j in above:
            if runs[j][1] <= last and start <= runs[j][2]:  # a column in common
                a, b = root(i), root(j)
                parent[max(a, b)] = min(a, b)  # the earlier run stays the root
    boxes: dict[int, Box] = {}
    for i, (r, c0, c1) in enumerate(runs):
        k = root(i)
        box = boxes.get(k)
        boxes[k] = (r, c0, r, c1) if box is None else (
            min(box[0], r), min(box[1], c0), max(box[2], r), max(box[3], c1))
    return [boxes[k] for k in sorted(boxes)]


def _overlaps(a: Box, b: Box) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


class RegionDetector:
    """Per-viewer video regions; feed it every change (:meth:`changed`), ask it each round
    (:meth:`update`).

    :param size: the screen's (width, height) in pixels.
    :param tile: tile side in pixels.
    :param max_streams: streams at most at once (≤ :data:`MAX_VIDEO_STREAMS`).
    """

    def __init__(self, size: tuple[int, int], tile: int, max_streams: int = 2) -> None:
        self.size = size
        self.tile = tile
        self.max_streams = min(max_streams, MAX_VIDEO_STREAMS)
        shape = (-(-size[1] // tile), -(-size[0] // tile))
        self._history: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self._counts = np.zeros(shape, dtype=np.int32)
        self._last_change = np.full(shape, -1e9)
        #: Per tile: its changes running, each within FAST_GAP of the one before.
        self._streak = np.zeros(shape, dtype=np.int32)
        #: The live regions, by stream number.
        self.regions: dict[int, Region] = {}
        # The last round's hot tiles and their groups: a pan or a playing video keeps the
        # same hot tiles round after round, and grouping them is most of a round's planning
        # (120 us of a 60 fps 1080p round in the host, against a 500-byte compare).
        self._grouped: tuple[bytes, list[Box]] = (b"", [])
        # Each rectangle's covered tiles, read-only (a region's rectangle rarely changes).
        self._masks: dict[Box, np.ndarray] = {}

    def changed(self, now: float, mask: np.ndarray) -> None:
        """Tiles ``mask`` changed at ``now`` (one screen change event)."""
        if mask.shape != self._counts.shape:
            return
        self._history.append((now, mask.copy()))
        self._counts += mask
        quick = now - self._last_change[mask] <= FAST_GAP
        self._streak[mask] = np.where(quick, self._streak[mask] + 1, 1)
        self._last_change[mask] = now
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._history and self._history[0][0] < now - WINDOW:
            _, old = self._history.popleft()
            self._counts -= old

    def hot(self, now: float) -> np.ndarray:
        """The tiles that changed in most change events of the last :data:`WINDOW` s or in
        a quick streak (:data:`FAST_STREAK`), and within the last :data:`END_AFTER` s."""
        self._expire(now)
        need = max(MIN_CHANGES, HOT_FRACTION * len(self._history))
        # A streak counts only while it runs: a tile that stopped longer than FAST_GAP ago
        # is judged by its count in the window alone.
        streak = (self._streak >= FAST_STREAK) & (self._last_change >= now - FAST_GAP)
        # Still moving too: a region that just ended for stillness must not start again from
        # the changes still in the window (it would flap).
        hot: np.ndarray = (((self._counts >= need) | streak)
                           & (self._last_change >= now - END_AFTER))
        return hot

    def becoming(self, now: float) -> float:
        """The share of the screen (0..1, by tiles) that may be becoming video at ``now``:
        tiles outside the live regions that changed within :data:`FAST_GAP`, in a streak of
        at most :data:`BECOMING_STREAK` changes (from its first change: a pan's first round
        is as large as any)."""
        young = ((self._last_change >= now - FAST_GAP) & (self._streak <= BECOMING_STREAK))
        if self.regions:
            young &= ~self.mask()
        return float(young.mean()) if young.size else 0.0

    def update(self, now: float, accept: Callable[[Box], bool]
               ) -> tuple[list[Region], list[Region], list[int]]:
        """Apply the rules at ``now``: the regions that started, that changed rectangle
        (each needs a key unit), and the stream numbers that ended (each needs ``video_end``;
        its tiles are the lossless refresh's again). ``accept(rect)`` says whether a new
        region's content is worth video (e.g. photo-like)."""
        ended = [s for s, r in self.regions.items()
                 if not self._recent(r.tiles, now)]
        for stream in ended:
            del self.regions[stream]
        started: list[Region] = []
        grown: list[Region] = []
        for box in self._components(self.hot(now)):
            if box[2] - box[0] + 1 < MIN_TILES_SIDE or box[3] - box[1] + 1 < MIN_TILES_SIDE:
                continue
            touching = [r for r in self.regions.values() if _overlaps(r.tiles, box)]
            if touching:
                keep = touching[0]
                merged = box
                for region in touching:
                    merged = _union(merged, region.tiles)
                for region in touching[1:]:  # two regions grew into one: one stream goes
                    del self.regions[region.stream]
                    ended.append(region.stream)
                    if region in grown:
                        grown.remove(region)
                if merged != keep.tiles:
                    rect = self._rect(merged)
                    if rect is not None:
                        keep.tiles, keep.rect = merged, rect
                        if keep not in started and keep not in grown:
                            grown.append(keep)
                continue
            free = [s for s in range(self.max_streams) if s not in self.regions]
            rect = self._rect(box)
            if not free or rect is None or not accept(rect):
                continue
            region = Region(free[0], rect, box, now)
            self.regions[region.stream] = region
            started.append(region)
        return started, grown, ended

    def _components(self, hot: np.ndarray) -> list[Box]:
        """:func:`components` of ``hot``, reused while the hot tiles stay the same."""
        key = hot.tobytes()
        if key != self._grouped[0]:
            self._grouped = (key, components(hot))
        return self._grouped[1]

    def _recent(self, tiles: Box, now: float) -> bool:
        r0, c0, r1, c1 = tiles
        return bool((self._last_change[r0:r1 + 1, c0:c1 + 1] >= now - END_AFTER).any())

    def _rect(self, tiles: Box) -> Box | None:
        """The pixel rectangle of a tile box: clipped to the screen, even sides."""
        r0, c0, r1, c1 = tiles
        width, height = self.size
        x, y = c0 * self.tile, r0 * self.tile
        w = min((c1 + 1) * self.tile, width) - x
        h = min((r1 + 1) * self.tile, height) - y
        w, h = w - w % 2, h - h % 2
        if w < MIN_VIDEO_SIDE or h < MIN_VIDEO_SIDE:
            return None
        return (x, y, w, h)

    def mask(self) -> np.ndarray:
        """The tiles the live regions' rectangles cover whole: video carries them, so they
        are not tile-encoded (a partly covered edge tile stays a tile). Read-only."""
        regions = list(self.regions.values())
        if len(regions) == 1:
            return self.region_mask(regions[0])
        out = np.zeros(self._counts.shape, dtype=bool)
        for region in regions:
            out |= self.region_mask(region)
        out.setflags(write=False)
        return out

    def region_mask(self, region: Region) -> np.ndarray:
        """The tiles one region's rectangle covers whole. Read-only: the array is kept for
        the next round's same rectangle."""
        cached = self._masks.get(region.rect)
        if cached is not None:
            return cached
        out = np.zeros(self._counts.shape, dtype=bool)
        x, y, w, h = region.rect
        t = self.tile
        c0, r0 = -(-x // t), -(-y // t)
        full_w, full_h = self.size
        # A tile is whole inside if its far edge (clipped to the screen) is inside the rect.
        c1 = next((c for c in range(c0, out.shape[1])
                   if min((c + 1) * t, full_w) > x + w), out.shape[1])
        r1 = next((r for r in range(r0, out.shape[0])
                   if min((r + 1) * t, full_h) > y + h), out.shape[0])
        out[r0:r1, c0:c1] = True
        out.setflags(write=False)
        if len(self._masks) >= MAX_MASKS_KEPT:  # a region that keeps growing: start afresh
            self._masks.clear()
        self._masks[region.rect] = out
        return out
