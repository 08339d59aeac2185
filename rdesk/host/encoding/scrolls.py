"""Vertical scrolls sent as a COPY of what the viewer holds: finding one, and its rules.

:func:`plan_scroll` looks for a vertical shift between the pixels the host *sent*
(``Held.sent``: what the viewer holds, exact or lossy) and a new frame, and says what the copy
leaves to send; :class:`ScrollChecks` says when a check is worth its cost. What the copy reads,
moves and records is the planner's (``Planner.scroll_region``, ``Planner.scroll``,
``Planner.settle_scroll``) and the record's (:class:`~rdesk.host.encoding.held.Held`): no
COPY ever reads pixels the host does not know the viewer holds (docs/adaptation.md,
"Scrolling"). Pure; no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from rdesk.host.encoding.encode import EncodedRect
from rdesk.host.encoding.jobs import LOSSY_AREA_TILES, Box, Job, bands
from rdesk.host.encoding.tiles import changed_box, dirty_tiles, find_vertical_scroll, merge_tiles
from rdesk.protocol.codec import copy_payload
from rdesk.protocol.encodings import Encoding

__all__ = [
    "SCROLL_MIN_TILES",
    "SCROLL_SKIP_MAX",
    "SCROLL_STRIP_SECONDS",
    "Scroll",
    "ScrollChecks",
    "ScrollPlan",
    "plan_scroll",
    "scroll_residual_lossless",
]

#: Changes at least this large are checked for a vertical scroll (sent as a copy).
SCROLL_MIN_TILES = 24
#: A scroll's residual (the newly exposed strip) goes lossless up to this fraction of the
#: screen: text exposed lossless needs no refresh later (a lossy strip is copied on as lossy
#: and refreshed once still).
SCROLL_LOSSLESS_FRACTION = 0.25
#: ... and only if the link carries it within this many seconds at its best measured rate.
SCROLL_STRIP_SECONDS = 0.5
#: After n >= 2 scroll checks in a row found none, the next 2**(n-1) - 1 large changes (at
#: most SCROLL_SKIP_MAX) are not checked: a check reads a sixteenth of both frames (~15 ms at
#: 1080p), and full-screen motion is a large change every round. A single miss skips nothing:
#: a terminal's scroll caught mid-redraw is missed now and then, and a skipped check there
#: sends a whole screen of text as JPEG instead of a copy.
SCROLL_SKIP_MAX = 15


def scroll_residual_lossless(tiles: int, screen_tiles: int) -> bool:
    """Whether a scroll's residual of ``tiles`` goes lossless (needing no refresh later):
    up to :data:`SCROLL_LOSSLESS_FRACTION` of the screen, and never less than a change that
    would go lossless anyway (:data:`LOSSY_AREA_TILES`)."""
    return tiles < max(LOSSY_AREA_TILES, SCROLL_LOSSLESS_FRACTION * screen_tiles)


class ScrollPlan(NamedTuple):
    """A scroll found by :func:`plan_scroll`: the copy and what it leaves to send."""

    copy: EncodedRect
    #: The first row the copy reads (its source's y; it spans the screen's width).
    src_y: int
    #: Tiles where the copied picture still differs from the frame.
    residual: np.ndarray
    #: Within those, the bands of pixels that differ.
    exposed: list[Box]


@dataclasses.dataclass
class Scroll:
    """A vertical scroll: the copy, then ``jobs`` for what the copy does not explain."""

    plan: ScrollPlan
    jobs: list[Job]
    lossless: bool
    #: ``jobs[refresh_from:]`` refresh, losslessly and whole, lossy tiles the copy moves.
    refresh_from: int

    @property
    def copy(self) -> EncodedRect:
        return self.plan.copy


class ScrollChecks:
    """When a large change is checked for a scroll: every time, until checks keep missing
    (see :data:`SCROLL_SKIP_MAX`)."""

    def __init__(self) -> None:
        self._misses = 0
        self._skip = 0

    def skipping(self) -> bool:
        """Whether this large change goes unchecked (and one fewer of the next will)."""
        if self._skip:
            self._skip -= 1
            return True
        return False

    def missed(self) -> None:
        """A check found no scroll: back off."""
        self._misses += 1
        self._skip = min(2 ** min(self._misses - 1, 8) - 1, SCROLL_SKIP_MAX)

    def found(self) -> None:
        """A scroll was sent: check every large change again."""
        self._misses = self._skip = 0


def plan_scroll(base: np.ndarray, frame: np.ndarray, region: Box, tile: int) -> ScrollPlan | None:
    """The copy that turns ``base`` (the pixels sent) into most of ``frame`` within
    ``region``, and what it leaves to send; ``None`` if the change is not a vertical scroll.
    (CPU-heavy: run it off the event loop.)"""
    x, y, w, _ = region
    size = (frame.shape[1], frame.shape[0])
    found = find_vertical_scroll(base, frame, region)
    if found is None:
        return None
    # The copy spans the rows the shift explains, not the region's tile rows: still rows
    # above or below (a browser's toolbar) copied over would be sent again as residual (a
    # 1919x34-64 strip of a browser's toolbar every update).
    dy, (first, last) = found
    dst_y, height = y + first, last - first + 1
    src_y = dst_y - dy
    predicted = base.copy()
    predicted[dst_y : dst_y + height, x : x + w] = base[src_y : src_y + height, x : x + w]
    residual = dirty_tiles(predicted, frame, tile)
    copy = EncodedRect(x, dst_y, w, height, Encoding.COPY, copy_payload(x, src_y), exact=True)
    exposed = [changed_box(predicted, frame, r) for r in bands(merge_tiles(residual, tile, *size))]
    return ScrollPlan(copy, src_y, residual, [r for r in exposed if r is not None])
