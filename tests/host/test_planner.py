"""The update planner (rdesk/host/encoding/planner.py, scrolls.py, jobs.py), driven with a
fake clock.

The planner decides; the encoder is the real one (EncodeCache over numpy frames), so the
bytes-per-pixel it learns and the budget it fits are real sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.host.encoding.encode import EncodeCache
from rdesk.host.encoding.jobs import LOSSY_AREA_TILES
from rdesk.host.encoding.parallel import encode_round
from rdesk.host.encoding.planner import Planner
from rdesk.host.encoding.scrolls import SCROLL_MIN_TILES, ScrollPlan, plan_scroll
from rdesk.host.encoding.tiles import TILE
from rdesk.protocol.codec import copy_source
from rdesk.protocol.encodings import Encoding

W, H = 16 * TILE, 8 * TILE
SHAPE = (H // TILE, W // TILE)
DELAY = 0.12


def planner() -> Planner:
    return Planner(SHAPE, TILE, (W, H), DELAY)


def frame_of(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 4), dtype=np.uint8)


def text_of(seed: int) -> np.ndarray:
    """Two colours, like a terminal's text: flat content (``encode.is_flat``)."""
    ink = np.random.default_rng(seed).random((H, W)) < 0.15
    return np.where(ink[..., None], np.uint8(20), np.uint8(235)).repeat(4, axis=2)


def tiles(*cells: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    for r, c in cells:
        mask[r, c] = True
    return mask


def encode(p: Planner, frame: np.ndarray, jobs: list, base: np.ndarray | None = None,
           trim: list[bool] | None = None, exact_if_flat: bool = False) -> list:
    return encode_round(EncodeCache(), frame, 1, jobs, quality=80, scale=1.0, base=base,
                        trim=trim, exact_if_flat=exact_if_flat)


NOTHING = np.zeros(SHAPE, dtype=bool)
NEVER = np.full(SHAPE, -1e9)


def test_a_keystroke_goes_lossless_at_once_and_leaves_the_viewer_exact() -> None:
    p = planner()
    p.mark(tiles((1, 1)))
    round_ = p.take_round(10.0, np.full(SHAPE, 10.0), NOTHING, budget=1 << 20)
    assert round_ is not None
    assert [lossless for _, lossless in round_.jobs] == [True]
    frame = frame_of(1)
    kept, exact = p.settle(round_, encode(p, frame, round_.jobs), frame)
    assert exact and len(kept) == 1 and kept[0].exact
    assert p.exact and p.held.known[1, 1] and p.held.known.sum() == 1
    assert p.take_round(10.0, np.full(SHAPE, 10.0), NOTHING, budget=1 << 20) is None


def test_moving_tiles_go_lossy_then_lossless_once_still() -> None:
    p = planner()
    moving = tiles((2, 3), (2, 4))
    p.mark(moving)
    assert p.paced(moving)  # motion waits for the frame-rate cap
    round_ = p.take_round(5.0, np.full(SHAPE, 5.0), moving, budget=1 << 20)
    assert round_ is not None and all(not lossless for _, lossless in round_.jobs)
    frame = frame_of(2)
    kept, exact = p.settle(round_, encode(p, frame, round_.jobs), frame)
    assert not exact and not p.exact and p.lossy.sum() == 2
    last_change = np.full(SHAPE, 5.0)
    # Not yet still: the refresh is due lossless_delay after the last change.
    assert p.refresh_due_in(5.05, last_change) == 5.0 + DELAY - 5.05
    assert p.take_round(5.05, last_change, NOTHING, budget=1 << 20) is None
    assert p.refresh_due_in(5.2, last_change) == 0.0
    refresh = p.take_round(5.2, last_change, NOTHING, budget=1 << 20)
    assert refresh is not None and all(lossless for _, lossless in refresh.jobs)
    kept, exact = p.settle(refresh, encode(p, frame, refresh.jobs), frame)
    assert exact and kept and p.lossy.sum() == 0 and p.exact
    assert p.refresh_due_in(6.0, last_change) is None


def test_a_large_change_goes_lossy_first_even_when_not_moving() -> None:
    p = planner()
    big = np.zeros(SHAPE, dtype=bool)
    big.flat[:LOSSY_AREA_TILES] = True
    p.mark(big)
    assert p.paced(NOTHING)
    round_ = p.take_round(1.0, np.full(SHAPE, 1.0), NOTHING, budget=1 << 20)
    assert round_ is not None and not any(lossless for _, lossless in round_.jobs)


def test_a_large_change_of_text_encoded_exactly_goes_whole_whatever_the_budget() -> None:
    p = planner()
    p.mark(np.ones(SHAPE, dtype=bool))
    frame = text_of(1)
    round_ = p.take_round(1.0, np.full(SHAPE, 1.0), NOTHING, budget=1000)
    assert round_ is not None and round_.lossy == len(round_.jobs)
    encoded = encode(p, frame, round_.jobs, exact_if_flat=True)
    assert all(e.exact for e in encoded) and sum(len(e.payload) for e in encoded) > 1000
    # Lossy jobs always go, even encoded exactly: the budget is for refreshes.
    kept, exact = p.settle(round_, encoded, frame)
    assert kept == encoded and exact and p.exact and p.held.known.all()


def test_a_refresh_too_big_for_the_budget_is_spread_over_rounds() -> None:
    p = planner()
    frame = frame_of(3)
    p.held.record((0, 0, W, H), frame, lossy=True)  # the whole screen awaits its refresh
    p.dirty[:, :] = False
    last_change = np.zeros(SHAPE)
    rounds = 0
    while p.lossy.any():
        round_ = p.take_round(100.0, last_change, NOTHING, budget=64 * 1024)
        assert round_ is not None
        kept, exact = p.settle(round_, encode(p, frame, round_.jobs), frame)
        rounds += 1
        sent = sum(len(e.payload) for e in kept)
        # Within the budget, except that every round sends at least one rect.
        assert sent <= 64 * 1024 or len(kept) == 1
        assert rounds < 200
    assert rounds > 4 and exact and p.exact


def test_rects_cut_by_the_budget_are_put_back_where_they_came_from() -> None:
    p = planner()
    p.mark(tiles((0, 0), (7, 15)))  # two separate still changes
    p.lossy[3, 3] = True  # and a due refresh
    frame = frame_of(4)
    # The estimate says text-like (tiny) tiles, so all three are planned; the noise they
    # really are is far bigger, and the check after encoding cuts the round.
    p.lossless_bpp = 0.001
    round_ = p.take_round(50.0, np.zeros(SHAPE), NOTHING, budget=1000)
    assert round_ is not None and len(round_.jobs) == 3
    kept, exact = p.settle(round_, encode(p, frame, round_.jobs), frame)
    assert len(kept) == 1 and not exact and not p.exact
    # What was left out is owed again: dirty if it was a change, lossy if it was a refresh.
    owed = p.dirty | p.lossy
    assert owed.sum() == 2
    assert not p.dirty[3, 3] or not p.lossy[3, 3]


def _scrolled(base: np.ndarray, dy: int, strip: np.ndarray | None = None) -> np.ndarray:
    frame = np.empty_like(base)
    frame[dy:] = base[:-dy]
    frame[:dy] = (frame_of(99) if strip is None else strip)[:dy]  # the exposed strip
    return frame


def _sent(p: Planner, base: np.ndarray, lossy: bool = False) -> None:
    """The viewer was sent all of ``base`` (lossy or not) and the screen changed since."""
    p.held.record((0, 0, W, H), base, lossy=lossy)
    p.dirty[:, :] = True


def _found(base: np.ndarray, lossy: bool = False, strip: np.ndarray | None = None
           ) -> tuple[Planner, np.ndarray, ScrollPlan]:
    """A planner that sent all of ``base`` (lossy or not), the frame after a scroll of 40
    rows, and the scroll found as ViewerLink finds it (the planner's work taken)."""
    p = planner()
    frame = _scrolled(base, 40, strip)
    _sent(p, base, lossy=lossy)
    region = p.scroll_region(frame)
    assert region is not None
    p.take_dirty()
    plan = plan_scroll(p.held.sent, frame, region, TILE)
    assert plan is not None
    return p, frame, plan


def test_a_scroll_is_a_copy_of_what_was_sent() -> None:
    p = planner()
    base = frame_of(5)
    frame = _scrolled(base, 40)
    p.dirty[:, :] = True
    assert p.scroll_region(frame) is None  # the viewer was sent nothing yet
    _sent(p, base)
    region = p.scroll_region(frame)
    assert region == (0, 0, W, H)
    taken = p.take_dirty()
    plan = plan_scroll(base, frame, region, TILE)
    assert plan is not None
    scroll = p.scroll(plan, carry_rate=1e9)
    assert scroll.copy.encoding is Encoding.COPY and scroll.lossless
    assert copy_source(scroll.copy) == (0, 0) and scroll.copy.y == 40
    encoded = encode(p, frame, scroll.jobs)
    assert p.settle_scroll(scroll, encoded, frame)
    assert p.exact and taken.all() and np.array_equal(p.held.sent, frame)


def test_a_scroll_of_a_lossy_picture_is_a_copy_and_stays_lossy() -> None:
    p, frame, plan = _found(frame_of(11), lossy=True)
    assert plan.src_y == 0 and plan.copy.y == 40
    scroll = p.scroll(plan, carry_rate=1e9)
    assert scroll.lossless  # the exposed strip
    exact = p.settle_scroll(scroll, encode(p, frame, scroll.jobs), frame)
    # The copied pixels are the lossy ones the viewer had: owed a refresh once still.
    assert not exact and p.lossy.all() and not p.dirty.any()
    assert np.array_equal(p.held.sent, frame)
    refresh = p.take_round(100.0, np.zeros(SHAPE), NOTHING, budget=1 << 30)
    assert refresh is not None and all(lossless for _, lossless in refresh.jobs)
    assert not any(refresh.trim)  # lossy tiles go whole, never trimmed against what was sent
    p.settle(refresh, encode(p, frame, refresh.jobs, base=p.held.sent, trim=refresh.trim), frame)
    assert p.exact


def test_a_copy_moves_the_lossy_flags_with_the_pixels() -> None:
    p = planner()
    base = frame_of(12)
    p.held.record((0, 0, W, H), base, lossy=False)
    p.held.record((0, 0, W, TILE), base, lossy=True)  # only the top row of tiles is lossy
    after = base.copy()
    after[100:292] = base[0:192]
    p.held.scrolled(0, 100, 3 * TILE, [], after)  # rows 0..191 land on 100..291
    lossy_rows = np.nonzero(p.lossy.any(axis=1))[0].tolist()
    # Row 0 stays lossy; tile rows 1 (64..127) and 2 (128..191) receive rows 0..63 of the
    # lossy source (at 100..163); tile rows 3 and 4 receive only exact rows.
    assert lossy_rows == [0, 1, 2]
    assert p.held.sent is after  # the frame itself, no copy ...
    pristine = after.copy()
    p.held.record((0, 0, TILE, TILE), frame_of(1), lossy=False)
    # ... until a later send writes to the record, which never writes to the frame.
    assert p.held.sent is not after and np.array_equal(after, pristine)
    assert np.array_equal(p.held.sent[:TILE, :TILE], frame_of(1)[:TILE, :TILE])


def test_no_copy_reads_a_tile_never_sent() -> None:
    p = planner()
    base = frame_of(13)
    p.held.record((0, 0, W, H - TILE), base, lossy=False)  # the bottom row never went
    frame = _scrolled(base, 40)
    p.dirty[:, :] = True
    assert p.scroll_region(frame) is None
    with pytest.raises(ValueError):
        p.held.scrolled(H - 2 * TILE, 0, 2 * TILE, [], frame)


def test_scroll_checks_back_off_after_misses() -> None:
    p = planner()
    _sent(p, frame_of(14))
    other = frame_of(15)
    checks = 0
    for _ in range(40):
        if p.scroll_region(other) is not None:
            checks += 1
            p.scroll_missed()
    assert checks == 6  # at rounds 0, 1, 3, 7, 15 and 31: skips of 0, 1, 3, 7, 15


def test_a_strip_the_link_cannot_carry_goes_lossy() -> None:
    p, frame, plan = _found(frame_of(6))
    scroll = p.scroll(plan, carry_rate=1.0)  # one byte a second
    assert not scroll.lossless
    exact = p.settle_scroll(scroll, encode(p, frame, scroll.jobs), frame)
    assert not exact and p.lossy.any() and p.scrolling  # the next scroll is a copy again


def test_a_lossy_strip_of_text_encoded_exactly_is_exact_where_it_lands() -> None:
    p, frame, plan = _found(text_of(2), lossy=True, strip=text_of(3))
    scroll = p.scroll(plan, carry_rate=1.0)  # a strip the link cannot carry: lossy jobs
    assert not scroll.lossless
    encoded = encode(p, frame, scroll.jobs, exact_if_flat=True)
    assert encoded and all(e.exact for e in encoded)
    p.settle_scroll(scroll, encoded, frame)
    # The strip's whole tiles are exact now; the copied rows stay lossy, as they were.
    assert not p.lossy[plan.residual].any() and p.lossy[~plan.residual].all()


def test_only_a_large_change_ends_a_run_of_scrolls() -> None:
    p, frame, plan = _found(frame_of(21))
    scroll = p.scroll(plan, carry_rate=1e9)
    p.settle_scroll(scroll, encode(p, frame, scroll.jobs), frame)
    everything = np.ones(SHAPE, dtype=bool)
    assert p.scrolling and not p.paced(everything)  # the next scroll goes at once
    p.mark(tiles((0, 0)))  # a small change between two scrolls: lossless, unpaced
    small = p.take_round(1.0, np.zeros(SHAPE), NOTHING, 1 << 20)
    assert small is not None and small.lossy == 0
    p.settle(small, encode(p, frame, small.jobs), frame)
    p.mark(everything)
    assert p.scrolling and not p.paced(everything)
    large = p.take_round(2.0, np.zeros(SHAPE), NOTHING, 1 << 20)  # no scroll: a large change
    assert large is not None and large.lossy
    p.settle(large, encode(p, frame, large.jobs), frame)
    p.mark(everything)
    assert not p.scrolling and p.paced(everything)


def test_no_scroll_gives_the_work_back() -> None:
    p = planner()
    base = frame_of(7)
    _sent(p, base)
    assert int(p.dirty.sum()) >= SCROLL_MIN_TILES
    other = frame_of(8)
    region = p.scroll_region(other)
    assert region is not None
    taken = p.take_dirty()
    assert plan_scroll(base, other, region, TILE) is None
    p.give_back(taken)
    assert p.dirty.all()


def test_resize_forgets_everything() -> None:
    p = planner()
    p.held.record((0, 0, W, H), frame_of(9), lossy=True)
    p.resize((4, 4), (4 * TILE, 4 * TILE))
    assert p.dirty.shape == (4, 4) and p.dirty.all() and not p.lossy.any()
    assert p.held.sent is None and not p.held.known.any()
    assert not p.mark(np.ones(SHAPE, dtype=bool))  # a mark of the old shape is ignored


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, SHAPE[0] - 1), st.integers(0, SHAPE[1] - 1)),
                min_size=1, max_size=30),
       st.integers(1, 300_000))
def test_every_change_is_eventually_sent_exactly(cells: list[tuple[int, int]],
                                                 budget: int) -> None:
    p = planner()
    frame = frame_of(10)
    p.mark(tiles(*cells))
    now = 0.0
    for _ in range(500):
        now += 1.0  # everything is long still
        round_ = p.take_round(now, np.zeros(SHAPE), NOTHING, budget)
        if round_ is None:
            break
        p.settle(round_, encode(p, frame, round_.jobs), frame)
    assert not p.dirty.any() and not p.lossy.any()
    assert p.exact


def test_tiles_sent_by_a_video_stream_are_held_lossy_and_copied_as_such() -> None:
    p = planner()
    base = frame_of(16)
    p.held.record((0, 0, W, H), base, lossy=False)
    video = np.zeros(SHAPE, dtype=bool)
    video[2:5, 3:9] = True
    playing = base.copy()
    playing[2 * TILE : 5 * TILE, 3 * TILE : 9 * TILE] = frame_of(17)[: 3 * TILE, : 6 * TILE]
    p.mark(video)
    p.sent_elsewhere(video, playing)
    assert not p.dirty.any() and np.array_equal(p.lossy, video)
    # What a scroll is detected against is what the stream showed, not the old picture.
    assert np.array_equal(p.held.sent, playing)
    assert p.take_round(0.0, np.zeros(SHAPE), NOTHING, 1 << 20) is None  # not yet still
    refresh = p.take_round(10.0, np.zeros(SHAPE), NOTHING, 1 << 20)
    assert refresh is not None and not any(refresh.trim)


def test_a_full_screen_stream_takes_its_frame_as_the_record() -> None:
    """A stream over every tile (a pan): the frame it was cut from is the record (no copy),
    every tile is held lossy and known, nothing stays dirty; a part of the screen is copied."""
    p = planner()
    p.held.record((0, 0, W, H), frame_of(20), lossy=False)
    everything = np.ones(SHAPE, dtype=bool)
    p.mark(everything)
    playing = frame_of(21)
    p.sent_elsewhere(everything, playing)
    assert p.held.sent is playing and p.lossy.all() and p.held.known.all()
    assert not p.dirty.any()
    part = np.zeros(SHAPE, dtype=bool)
    part[1:3, 2:5] = True
    later = frame_of(22)
    p.mark(part)
    p.sent_elsewhere(part, later)
    assert p.held.sent is not later and p.held.sent is not playing
    box = (slice(TILE, 3 * TILE), slice(2 * TILE, 5 * TILE))
    assert np.array_equal(p.held.sent[box], later[box])
    outside = np.ones((H, W), dtype=bool)
    outside[box] = False
    assert np.array_equal(p.held.sent[outside], playing[outside])


def test_a_round_over_the_whole_screen_takes_its_frame_as_the_record() -> None:
    p = planner()
    p.mark(np.ones(SHAPE, dtype=bool))
    frame = frame_of(18)
    round_ = p.take_round(1.0, np.full(SHAPE, 1.0), np.ones(SHAPE, dtype=bool), 1 << 20)
    assert round_ is not None
    p.settle(round_, encode(p, frame, round_.jobs), frame)
    assert p.held.sent is frame and p.lossy.all()  # no 8 MB copy per full-screen frame
    p.mark(tiles((0, 0)))
    small = frame_of(19)
    round_ = p.take_round(2.0, np.full(SHAPE, 2.0), NOTHING, 1 << 20)
    assert round_ is not None
    p.settle(round_, encode(p, small, round_.jobs), small)
    assert p.held.sent is not frame and np.array_equal(p.held.sent[TILE:], frame[TILE:])
    assert np.array_equal(p.held.sent[:TILE, :TILE], small[:TILE, :TILE])


def test_lossy_tiles_a_scroll_moves_are_refreshed_with_it_within_the_budget() -> None:
    p, frame, plan = _found(frame_of(20), lossy=True)
    p.lossless_bpp = 4.0  # noise: incompressible
    small = p.scroll(plan, carry_rate=1e9, budget=10 * TILE * TILE * 4)
    refresh = small.jobs[small.refresh_from:]
    big = p.scroll(plan, carry_rate=1e9, budget=1 << 30)
    assert refresh and all(lossless for _, lossless in refresh)
    def area(jobs: list) -> int:
        return sum(w * h for (_, _, w, h), _ in jobs)

    assert area(refresh) < area(big.jobs[big.refresh_from:])  # the budget bounds it
    encoded = encode(p, frame, big.jobs)
    exact = p.settle_scroll(big, encoded, frame)
    # Everything the copy moved was refreshed in the same update: exact at once.
    assert exact and not p.lossy.any()
