"""What a round's work is made of: rectangles to encode, cut for the encoders and the budget.

Pure; shared by the planner's ordinary rounds (:mod:`rdesk.host.encoding.planner`) and its
scrolls (:mod:`rdesk.host.encoding.scrolls`), and by the encoders (``parallel.encode_round``).
"""

from __future__ import annotations

from rdesk.host.encoding.encode import EncodedRect, split_rect
from rdesk.protocol.encodings import Encoding

__all__ = [
    "BAND_HEIGHT",
    "LOSSY_AREA_TILES",
    "SMALL_REFRESH_BUDGET",
    "Box",
    "Job",
    "bands",
    "fit_budget",
    "refresh_pieces",
]

#: Tiles at least this large in total are worth a lossy first pass even when not moving.
LOSSY_AREA_TILES = 48
#: Below this refresh budget (bytes per round) lossless rects are cut into pieces of at most
#: 4 x 1 tiles, so a round can stop at the budget instead of sending a whole band.
SMALL_REFRESH_BUDGET = 256 * 1024
#: Tallest rectangle encoded in one piece: bounds one payload, and lets bands encode in parallel.
BAND_HEIGHT = 256

Box = tuple[int, int, int, int]
#: One rectangle to encode, and whether losslessly.
Job = tuple[Box, bool]


def bands(rects: list[Box]) -> list[Box]:
    """Split rectangles into horizontal bands at most :data:`BAND_HEIGHT` tall."""
    return [band for r in rects for band in split_rect(r, r[2], BAND_HEIGHT)]


def refresh_pieces(rects: list[Box], budget: int, tile: int) -> list[Box]:
    """Lossless rects as the budget wants them: in bands, and on a budget under
    :data:`SMALL_REFRESH_BUDGET` in pieces of at most 4 x 1 tiles."""
    pieces = bands(rects)
    if budget < SMALL_REFRESH_BUDGET:
        pieces = [p for r in pieces for p in split_rect(r, 4 * tile, tile)]
    return pieces


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
