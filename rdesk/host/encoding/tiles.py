"""Which parts of the screen changed: tile masks and the rectangles that cover them.

Pure numpy; no Python loop ever runs over pixels. Python loops run only over 64-row bands
(17 at 1080p) and over rows of the tile mask.

Frames are ``(H, W, 4)`` ``uint8`` arrays (BGRA, as :mod:`rdesk.host.screen.capture` returns them).
Any pixel layout works as long as both frames share it: comparison is byte-exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["TILE", "Rect", "changed_box", "dirty_tiles", "find_vertical_scroll", "merge_tiles"]

#: Side of a square tile, in pixels.
TILE = 64

#: ``(x, y, w, h)`` in pixels.
Rect = tuple[int, int, int, int]

BoolMask = npt.NDArray[np.bool_]


def _grid(height: int, width: int, tile: int) -> tuple[int, int]:
    return -(-height // tile), -(-width // tile)


def _words(frame: npt.NDArray[np.uint8], wide: bool) -> npt.NDArray[np.unsignedinteger]:
    """View each row of ``frame`` as machine words (no copy for C-contiguous input).

    With ``wide`` each uint64 holds two pixels, halving the number of comparisons.
    """
    height = frame.shape[0]
    rows = np.ascontiguousarray(frame).reshape(height, -1)
    return rows.view(np.uint64 if wide else np.uint32)


def dirty_tiles(
    prev: npt.NDArray[np.uint8], cur: npt.NDArray[np.uint8], tile: int = TILE
) -> BoolMask:
    """Return the mask of ``tile`` x ``tile`` tiles whose pixels differ between two frames.

    Both frames are ``(H, W, 4)`` uint8. The result has shape ``(ceil(H/tile), ceil(W/tile))``
    (edge tiles may be partial) and is True exactly where at least one byte in the tile differs.
    If the shapes differ (the screen was resized), every tile of ``cur`` is dirty.

    Cost: the first row of every 64-row band is compared first; the rest of a band is read
    only for the tiles that row did not prove dirty. So a still screen costs one pass over
    both frames (about 0.4 ms at 1920x1080) and full-screen motion about a sixty-fourth of it.
    """
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if cur.ndim != 3 or cur.shape[2] != 4:
        raise ValueError(f"frames must be (H, W, 4), got {cur.shape}")
    height, width = cur.shape[0], cur.shape[1]
    rows, cols = _grid(height, width, tile)
    if prev.shape != cur.shape:
        return np.ones((rows, cols), dtype=np.bool_)
    if height == 0 or width == 0:
        return np.zeros((rows, cols), dtype=np.bool_)

    # Two pixels per uint64 when neither a row nor a tile would split a word.
    wide = width % 2 == 0 and tile % 2 == 0
    per_px = 2 if wide else 1
    a = _words(prev, wide)
    b = _words(cur, wide)
    tile_words = tile // per_px
    ncols_words = a.shape[1]
    padded = cols * tile_words
    pad = padded - ncols_words

    def fold(changed_words: BoolMask) -> BoolMask:
        """Flags of word columns (last axis) → flags of the tiles they belong to."""
        if pad:
            changed_words = np.pad(changed_words, [(0, 0)] * (changed_words.ndim - 1) + [(0, pad)])
        tiles: BoolMask = changed_words.reshape(*changed_words.shape[:-1], cols, tile_words)
        return np.asarray(tiles.any(axis=-1))

    # The first row of every band, in one pass: for moving content (video, a dragged window)
    # it proves most tiles dirty, and their other 63 rows need not be read at all.
    mask = fold(np.not_equal(a[::tile], b[::tile]))
    # Which bands the first row proved dirty whole, and which it touched at all: one reduction
    # each (per-band calls cost more than the whole first-row pass for a full-screen change).
    whole_rows: list[bool] = np.asarray(mask.all(axis=1)).tolist()
    touched_rows: list[bool] = np.asarray(mask.any(axis=1)).tolist()
    for r in range(rows):
        if whole_rows[r]:
            continue
        hit = mask[r]
        y0, y1 = r * tile + 1, min(r * tile + tile, height)
        if not touched_rows[r]:
            # One pass over the band: which word columns changed in any of its rows.
            # (Checking the band for equality first would read it twice when it changed.)
            changed = np.not_equal(a[y0:y1], b[y0:y1]).any(axis=0)
            if changed.any():
                mask[r] = fold(changed)
            continue
        for c0, c1 in _runs(~hit):  # read in full only the tiles the first row left open
            w0, w1 = c0 * tile_words, min(c1 * tile_words, ncols_words)
            changed = np.not_equal(a[y0:y1, w0:w1], b[y0:y1, w0:w1]).any(axis=0)
            if changed.any():
                whole = np.zeros((c1 - c0) * tile_words, dtype=np.bool_)
                whole[: w1 - w0] = changed
                hit[c0:c1] = whole.reshape(c1 - c0, tile_words).any(axis=1)
    return mask


def changed_box(
    prev: npt.NDArray[np.uint8], cur: npt.NDArray[np.uint8], rect: Rect
) -> Rect | None:
    """The smallest rectangle within ``rect`` outside which ``prev`` and ``cur`` are equal.

    ``None`` when ``rect`` holds no difference at all. Both frames are ``(H, W, 4)`` uint8 of
    the same shape and ``rect`` lies within them. A typed glyph marks whole 64x64 tiles dirty;
    sending only the changed pixels to a viewer known to hold ``prev`` saves most of the bytes.
    """
    x, y, w, h = rect
    # Whole pixels as 32-bit words: the last axis of a slice stays contiguous, so no copy.
    a = prev[y : y + h, x : x + w].view(np.uint32)[..., 0]
    b = cur[y : y + h, x : x + w].view(np.uint32)[..., 0]
    differs = np.not_equal(a, b)
    rows = np.flatnonzero(differs.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(differs.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    return (x + left, y + top, int(cols[-1]) - left + 1, int(rows[-1]) - top + 1)


def _runs(row: BoolMask) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` index runs of True values in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], row, [False])).astype(np.int8)))
    return [(int(edges[i]), int(edges[i + 1])) for i in range(0, len(edges), 2)]


def merge_tiles(mask: BoolMask, tile: int, width: int, height: int) -> list[Rect]:
    """Cover the True tiles of ``mask`` with few, non-overlapping pixel rectangles.

    Contract: the returned ``(x, y, w, h)`` rectangles are pairwise disjoint, lie within
    ``width`` x ``height``, and their union is exactly the union of the dirty tiles (clipped to
    the screen). Horizontal runs of dirty tiles in a row are merged first, then runs spanning
    the same columns in consecutive rows are merged into one taller rectangle.
    Rectangles are returned in top-to-bottom, then left-to-right order of their top edge.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    # Open rectangles keyed by their column run: (c0, c1) -> first tile row.
    open_rects: dict[tuple[int, int], int] = {}
    done: list[tuple[int, int, int, int]] = []  # (r0, r1, c0, c1) in tiles, half-open
    nrows = mask.shape[0]
    busy = np.asarray(mask.any(axis=1))
    runs: set[tuple[int, int]] = set()
    row_bytes = b""
    for r in range(nrows + 1):
        if r == nrows or not busy[r]:
            runs, row_bytes = set(), b""
        elif (this := mask[r].tobytes()) != row_bytes:  # a row like the last has its runs
            runs, row_bytes = set(_runs(mask[r])), this
        for key in [k for k in open_rects if k not in runs]:
            done.append((open_rects.pop(key), r, key[0], key[1]))
        for key in runs:
            open_rects.setdefault(key, r)
    done.sort()
    out: list[Rect] = []
    for r0, r1, c0, c1 in done:
        x0, y0 = c0 * tile, r0 * tile
        x1, y1 = min(c1 * tile, width), min(r1 * tile, height)
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1 - x0, y1 - y0))
    return out


#: Scroll detection votes with SCROLL_BLOCKS blocks of 8 pixels spread across each row (a
#: sixteenth of the cache lines): reading whole rows of both frames cost ~10 ms at 1080p, on
#: every large change checked for a scroll (planner.scroll_region), scroll or not.
SCROLL_BLOCKS = 16


def _row_samples(region: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    """:data:`SCROLL_BLOCKS` blocks of 8 pixels of each row, as one 32-bit word per pixel."""
    width = region.shape[1]
    starts = np.linspace(0, max(0, width - 8), SCROLL_BLOCKS).astype(np.intp)
    cols = np.unique(np.clip(starts[:, None] + np.arange(8), 0, width - 1))
    words: npt.NDArray[np.uint32] = region.view(np.uint32)[..., 0]  # no copy: rows stay strided
    return words[:, cols]


def _row_hashes(words: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
    """One 64-bit value per row, equal for identical rows (collisions are possible)."""
    # Position-dependent odd multipliers so that permuted words hash differently.
    weights = (np.arange(words.shape[1], dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | 1
    with np.errstate(over="ignore"):
        return (words.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def _rows_equal(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> BoolMask:
    """Per row, whether two same-shaped ``(n, w, 4)`` regions are byte-identical: as machine
    words where both are contiguous (full-width bands; 0.8 ms for a 1080p frame, against
    2.6 ms byte by byte), else byte by byte."""
    if a.flags.c_contiguous and b.flags.c_contiguous:
        wide = a.shape[1] % 2 == 0
        return np.asarray((_words(a, wide) == _words(b, wide)).all(axis=1))
    return np.asarray((a == b).all(axis=(1, 2)))


def find_vertical_scroll(
    prev: npt.NDArray[np.uint8],
    cur: npt.NDArray[np.uint8],
    region: Rect,
    *,
    max_shift: int | None = None,
    min_fraction: float = 0.5,
) -> tuple[int, tuple[int, int]] | None:
    """Find a vertical shift ``dy`` with ``cur[y] == prev[y - dy]`` for most rows of ``region``.

    ``region`` is ``(x, y, w, h)`` in pixels. Returns the shift (positive: content moved down),
    and the first and last row of the region (offsets from its top) that are rows of ``prev``
    so shifted: where a copy starts and ends, leaving out the still rows above and below that
    the region's tiles take in (a browser's toolbar, a status line). The shift is the one that
    at least ``min_fraction`` of the unambiguous rows that stay inside the region agree on
    (by a hash of :data:`SCROLL_BLOCKS` blocks of pixels across the row), and under which at least
    ``min_fraction`` of the overlapping rows are then verified byte-identical; None when there
    is no such shift or the frames differ in shape. Uniform (blank) rows and rows that repeat
    in ``prev`` do not vote, since they match at several shifts. Cost: a sixteenth of the
    region's cache lines, a Python loop over its rows (not its pixels), and a full comparison
    only for a shift that won the vote.
    """
    if prev.shape != cur.shape:
        return None
    x, y, w, h = region
    if w <= 0 or h <= 1:
        return None
    a = prev[y : y + h, x : x + w]
    b = cur[y : y + h, x : x + w]
    h = a.shape[0]
    limit = h - 1 if max_shift is None else min(max_shift, h - 1)
    # Votes come from sampled pixels (SCROLL_BLOCKS); the shift they elect is then verified on
    # whole rows, so sampling can miss a scroll but never report a false one.
    sa, sb = _row_samples(a), _row_samples(b)
    ha, hb = _row_hashes(sa), _row_hashes(sb)
    # Ambiguous rows match at several shifts and leave the vote: rows whose samples are a
    # single repeated pixel, and rows that occur more than once in ``prev`` (the blank lines
    # of a page beside a scrollbar or a window's border, which make them non-uniform: on a
    # browser's article they were 20-60 % of the rows, and with only their first occurrence
    # indexed their votes went astray and held the true shift under half).
    _, inverse, counts = np.unique(ha, return_inverse=True, return_counts=True)
    uniform = (sa == sa[:, :1]).all(axis=1) | (counts[inverse] > 1)
    index: dict[int, int] = {}
    hashes_a: list[int] = ha.tolist()
    for i in np.flatnonzero(~uniform).tolist():
        index[hashes_a[i]] = i
    votes: dict[int, int] = {}
    hashes_b: list[int] = hb.tolist()
    for j, hv in enumerate(hashes_b):
        src = index.get(hv)
        if src is not None and src != j and abs(j - src) <= limit:
            votes[j - src] = votes.get(j - src, 0) + 1
    if not votes:
        return None
    dy, count = max(votes.items(), key=lambda kv: kv[1])
    # Only non-uniform source rows that stay inside the region could have voted for dy.
    voters = ~uniform[: h - dy] if dy > 0 else ~uniform[-dy:]
    if count < min_fraction * int(voters.sum()):
        return None
    # Verify exactly on the overlap: enough rows must be truly identical after the shift.
    same = _rows_equal(b[dy:], a[: h - dy]) if dy > 0 else _rows_equal(b[: h + dy], a[-dy:])
    if int(same.sum()) < min_fraction * (h - abs(dy)):
        return None
    rows = np.flatnonzero(same)
    first = max(dy, 0)  # the overlap's first row in the region
    return dy, (first + int(rows[0]), first + int(rows[-1]))

