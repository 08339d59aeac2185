"""Tile diff and rectangle merging against slow reference implementations."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rdesk.host.encoding.tiles import (
    TILE,
    changed_box,
    dirty_tiles,
    find_vertical_scroll,
    merge_tiles,
)


def naive_dirty(prev: npt.NDArray[np.uint8], cur: npt.NDArray[np.uint8], tile: int) -> np.ndarray:
    h, w = cur.shape[:2]
    rows, cols = -(-h // tile), -(-w // tile)
    out = np.zeros((rows, cols), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            a = prev[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
            b = cur[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
            out[r, c] = not np.array_equal(a, b)
    return out


def _frames(rng: np.random.Generator, h: int, w: int, changes: int) -> tuple[np.ndarray, ...]:
    prev = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    cur = prev.copy()
    for _ in range(changes):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        ch = int(rng.integers(0, 4))
        cur[y, x, ch] ^= np.uint8(1 + rng.integers(0, 255))
    return prev, cur


@pytest.mark.parametrize("shape", [(64, 64), (100, 130), (1, 1), (65, 63), (37, 201), (128, 256)])
@pytest.mark.parametrize("tile", [TILE, 16, 7, 1])
@pytest.mark.parametrize("changes", [0, 1, 5, 200])
def test_dirty_matches_reference(shape: tuple[int, int], tile: int, changes: int) -> None:
    rng = np.random.default_rng(hash((shape, tile, changes)) & 0xFFFF)
    prev, cur = _frames(rng, *shape, changes)
    got = dirty_tiles(prev, cur, tile)
    assert got.dtype == np.bool_
    assert np.array_equal(got, naive_dirty(prev, cur, tile))


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    tile=st.sampled_from([1, 2, 3, 8, 16, 64]),
    seed=st.integers(0, 2**32 - 1),
    changes=st.integers(0, 10),
)
def test_dirty_property(h: int, w: int, tile: int, seed: int, changes: int) -> None:
    prev, cur = _frames(np.random.default_rng(seed), h, w, changes)
    assert np.array_equal(dirty_tiles(prev, cur, tile), naive_dirty(prev, cur, tile))


@pytest.mark.parametrize("tile", [TILE, 16, 7])
def test_dirty_mixes_bands_proved_whole_partly_and_not_by_their_first_row(tile: int) -> None:
    """Bands whose first row differs in every tile, in some tiles, or in none (with changes
    further down), on one screen: each band takes its own path, the result is the reference."""
    rng = np.random.default_rng(tile)
    h, w = 5 * tile + 3, 9 * tile + 5
    prev = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    cur = prev.copy()
    cur[0] ^= 1  # band 0: every tile proved by its first row
    cur[tile, : 2 * tile] ^= 1  # band 1: two tiles by the first row...
    cur[tile + tile // 2, 5 * tile] ^= 1  # ...and one more further down
    cur[2 * tile + 1, w - 1] ^= 1  # band 2: the first row equal, the band not
    cur[4 * tile, :] = prev[4 * tile, ::-1]  # band 4: reversed row (random: differs nearly all)
    cur[4 * tile, tile : 2 * tile] = prev[4 * tile, tile : 2 * tile]
    got = dirty_tiles(prev, cur, tile)
    assert np.array_equal(got, naive_dirty(prev, cur, tile))
    assert got[0].all() and not got[3].any()
    everything = dirty_tiles(prev, prev ^ np.uint8(1), tile)
    assert everything.all() and everything.shape == naive_dirty(prev, cur, tile).shape


def test_single_byte_in_alpha_counts() -> None:
    prev = np.zeros((128, 128, 4), dtype=np.uint8)
    cur = prev.copy()
    cur[127, 127, 3] = 1
    mask = dirty_tiles(prev, cur)
    assert mask.tolist() == [[False, False], [False, True]]


def test_resize_makes_everything_dirty() -> None:
    prev = np.zeros((64, 64, 4), dtype=np.uint8)
    cur = np.zeros((100, 64, 4), dtype=np.uint8)
    assert dirty_tiles(prev, cur).tolist() == [[True], [True]]


def test_non_contiguous_input() -> None:
    rng = np.random.default_rng(1)
    big_prev, big_cur = _frames(rng, 200, 200, 30)
    prev, cur = big_prev[10:150, 3:170], big_cur[10:150, 3:170]
    assert np.array_equal(dirty_tiles(prev, cur, 16), naive_dirty(prev, cur, 16))


# --- merge_tiles -------------------------------------------------------------------------


def _coverage(rects: list[tuple[int, int, int, int]], width: int, height: int) -> np.ndarray:
    count = np.zeros((height, width), dtype=np.int32)
    for x, y, w, h in rects:
        assert w > 0 and h > 0
        assert x >= 0 and x + w <= width and y >= 0 and y + h <= height
        count[y : y + h, x : x + w] += 1
    return count


def _expected(mask: np.ndarray, tile: int, width: int, height: int) -> np.ndarray:
    px = np.kron(mask.astype(np.int32), np.ones((tile, tile), dtype=np.int32))
    return px[:height, :width]


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    tile=st.sampled_from([1, 4, 16]),
)
def test_merge_covers_exactly_without_overlap(data: st.DataObject, tile: int) -> None:
    rows = data.draw(st.integers(1, 12))
    cols = data.draw(st.integers(1, 12))
    mask = data.draw(hnp.arrays(np.bool_, (rows, cols)))
    # A screen size whose last row/column of tiles may be partial.
    width = data.draw(st.integers((cols - 1) * tile + 1, cols * tile))
    height = data.draw(st.integers((rows - 1) * tile + 1, rows * tile))
    rects = merge_tiles(mask, tile, width, height)
    assert np.array_equal(_coverage(rects, width, height), _expected(mask, tile, width, height))


def test_merge_examples() -> None:
    mask = np.array(
        [
            [1, 1, 0, 1],
            [1, 1, 0, 1],
            [0, 1, 1, 0],
        ],
        dtype=bool,
    )
    rects = merge_tiles(mask, 10, 35, 25)
    assert rects == [(0, 0, 20, 20), (30, 0, 5, 20), (10, 20, 20, 5)]
    assert merge_tiles(np.zeros((3, 3), dtype=bool), 64, 192, 192) == []
    assert merge_tiles(np.ones((2, 2), dtype=bool), 64, 100, 100) == [(0, 0, 100, 100)]


# --- find_vertical_scroll ----------------------------------------------------------------


def _textish(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    frame = np.full((h, w, 4), 255, dtype=np.uint8)
    for y in range(0, h, 3):
        frame[y, : int(rng.integers(1, w))] = rng.integers(0, 256, 4, dtype=np.uint8)
    return frame


@pytest.mark.parametrize("dy", [1, 17, -5, -40])
def test_scroll_detected(dy: int) -> None:
    rng = np.random.default_rng(7)
    prev = _textish(rng, 240, 160)
    cur = np.roll(prev, dy, axis=0)
    # The rows exposed by the scroll get new content.
    fresh = _textish(rng, abs(dy), 160)
    if dy > 0:
        cur[:dy] = fresh
    else:
        cur[dy:] = fresh
    found = find_vertical_scroll(prev, cur, (0, 0, 160, 240))
    assert found is not None and found[0] == dy


def test_no_scroll() -> None:
    rng = np.random.default_rng(3)
    prev = _textish(rng, 120, 80)
    assert find_vertical_scroll(prev, prev.copy(), (0, 0, 80, 120)) is None
    assert find_vertical_scroll(prev, _textish(rng, 120, 80), (0, 0, 80, 120)) is None


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_changed_box_is_the_tight_bounding_box(data: st.DataObject) -> None:
    h, w = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    prev = np.zeros((h, w, 4), dtype=np.uint8)
    cur = prev.copy()
    points = data.draw(st.lists(st.tuples(st.integers(0, h - 1), st.integers(0, w - 1),
                                          st.integers(0, 3)), max_size=5))
    for py, px, channel in points:
        cur[py, px, channel] = 7
    rx, ry = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
    rect = (rx, ry, data.draw(st.integers(1, w - rx)), data.draw(st.integers(1, h - ry)))
    inside = [(py, px) for py, px, _ in points
              if rx <= px < rx + rect[2] and ry <= py < ry + rect[3]]
    box = changed_box(prev, cur, rect)
    if not inside:
        assert box is None
        return
    ys, xs = [p[0] for p in inside], [p[1] for p in inside]
    assert box == (min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)


@pytest.mark.parametrize("width", [64, 63])
def test_rows_equal_as_words_or_bytes_agree(width: int) -> None:
    from rdesk.host.encoding.tiles import _rows_equal

    rng = np.random.default_rng(width)
    a = rng.integers(0, 256, (40, width, 4), dtype=np.uint8)
    b = a.copy()
    b[[3, 17, 39], [0, width - 1, width // 2], [0, 3, 1]] ^= 1  # one byte off in three rows
    want = [i not in (3, 17, 39) for i in range(40)]
    assert _rows_equal(a, b).tolist() == want  # contiguous: compared as words
    # A strided view (row 3's difference is in the column left out): byte by byte.
    assert _rows_equal(a[:, 1:], b[:, 1:]).tolist() == [i not in (17, 39) for i in range(40)]
