"""Scroll detection on a browser-like page (rdesk/host/encoding/tiles.py, scrolls.py): blank
lines beside a scrollbar repeat without being uniform, and must not outvote the true shift; a
still toolbar above the page and a still status line below it stay out of the copy, so only
the exposed rows (and the scrollbar) are left to send."""

from __future__ import annotations

import numpy as np

from rdesk.host.encoding.scrolls import plan_scroll
from rdesk.host.encoding.tiles import find_vertical_scroll

W, H, TILE = 640, 480, 64
TOP, BOTTOM = 70, 460  # the page's rows: a toolbar above, a status line below


def _document(rng: np.random.Generator, rows: int) -> np.ndarray:
    """A long page: paragraphs of 'text' rows (unique noise) between runs of blank rows,
    blank rows most of it, as an article's margins and line spacing are."""
    page = np.full((rows, W - 16, 4), 250, np.uint8)
    y = 0
    while y < rows:
        y += int(rng.integers(8, 30))  # the blank run
        for _ in range(int(rng.integers(2, 6))):  # a paragraph's lines
            if y + 12 > rows:
                break
            page[y : y + 9, 20 : int(rng.integers(200, W - 40))] = rng.integers(
                0, 256, (9, 1, 4), np.uint8)  # one colour a line: its rows repeat within it
            page[y : y + 9, 20:30] = rng.integers(0, 256, (9, 10, 4), np.uint8)
            y += 12
    return page


def _screen(page: np.ndarray, offset: int, thumb: int) -> np.ndarray:
    """The screen showing ``page`` from ``offset``: a toolbar, the page with a scrollbar
    (its thumb at ``thumb``), a status line."""
    screen = np.zeros((H, W, 4), np.uint8)
    screen[:TOP] = np.arange(W, dtype=np.uint8)[None, :, None]  # the toolbar's gradient
    screen[TOP:BOTTOM, : W - 16] = page[offset : offset + BOTTOM - TOP]
    screen[TOP:BOTTOM, W - 16 :] = 200
    screen[TOP + thumb : TOP + thumb + 40, W - 14 : W - 2] = 90
    screen[BOTTOM:] = 30
    screen[BOTTOM + 5 : BOTTOM + 12, 10:300] = 220
    return screen


def test_repeated_rows_do_not_outvote_the_shift() -> None:
    rng = np.random.default_rng(5)
    page = _document(rng, 3000)
    region = (0, 64, W, H - 64)
    for offset, step in ((0, 36), (400, 96), (1200, 12), (2000, 150)):
        prev = _screen(page, offset, 10)
        cur = _screen(page, offset + step, 11)
        found = find_vertical_scroll(prev, cur, region)
        assert found is not None and found[0] == -step


def test_the_copy_leaves_the_toolbar_and_the_status_line_alone() -> None:
    rng = np.random.default_rng(6)
    page = _document(rng, 2000)
    prev, cur = _screen(page, 300, 20), _screen(page, 372, 21)
    region = (0, 64, W, H - 64)  # the region's tile rows take in toolbar rows 64-69
    assert find_vertical_scroll(prev, cur, region) == (-72, (TOP - 64, BOTTOM - 72 - 1 - 64))
    plan = plan_scroll(prev, cur, region, TILE)
    assert plan is not None
    copy = plan.copy
    assert (copy.y, copy.y + copy.h) == (TOP, BOTTOM - 72)
    assert plan.src_y == TOP + 72
    # Applying the copy to what the viewer holds leaves only the exposed rows and the
    # scrollbar's column to send: the toolbar and the status line are already right.
    held = prev.copy()
    held[copy.y : copy.y + copy.h, copy.x : copy.x + copy.w] = prev[
        plan.src_y : plan.src_y + copy.h, copy.x : copy.x + copy.w]
    wrong = np.any(held != cur, axis=2)
    assert not wrong[:TOP].any() and not wrong[BOTTOM:].any()
    rows = np.flatnonzero(wrong[:, : W - 16].any(axis=1))
    assert rows.min() >= BOTTOM - 72  # only the exposed page rows, beside the scrollbar
    # Every pixel left wrong is in a residual tile.
    ys, xs = np.nonzero(wrong)
    assert plan.residual[ys // TILE, xs // TILE].all()


def test_a_copy_never_reads_outside_the_region() -> None:
    rng = np.random.default_rng(8)
    page = _document(rng, 2000)
    for step in (12, 60, 200):
        for sign in (1, -1):
            a, b = _screen(page, 500, 10), _screen(page, 500 + sign * step, 10)
            region = (0, 128, W, 256)
            plan = plan_scroll(a, b, region, TILE)
            if plan is None:
                continue
            copy = plan.copy
            for top in (copy.y, plan.src_y):
                assert region[1] <= top and top + copy.h <= region[1] + region[3]
