"""Pure policies of the per-viewer sender (rdesk/host/encoding/planner.py, parallel.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rdesk.host.encoding.jobs import LOSSY_AREA_TILES
from rdesk.host.encoding.parallel import share_out as _share_out
from rdesk.host.encoding.scrolls import scroll_residual_lossless


def test_scroll_residual_on_a_1080p_screen_stays_lossless_beyond_a_lossy_change() -> None:
    screen = 17 * 30  # 1920x1080 in 64-pixel tiles
    # A lagging viewer's scroll exposes several text lines: three tile rows, 90 tiles, which
    # as a plain change would go lossy, and would end the chain of copies.
    assert LOSSY_AREA_TILES <= 3 * 30
    assert scroll_residual_lossless(3 * 30, screen)
    assert not scroll_residual_lossless(screen // 2, screen)


def test_scroll_residual_on_a_small_screen_follows_the_lossy_threshold() -> None:
    assert scroll_residual_lossless(LOSSY_AREA_TILES - 1, 80)
    assert not scroll_residual_lossless(LOSSY_AREA_TILES, 80)


@given(st.lists(st.tuples(st.integers(1, 2000), st.integers(1, 300)), max_size=40),
       st.integers(1, 4))
def test_share_out_deals_every_job_once_with_balanced_area(
    sizes: list[tuple[int, int]], parts: int
) -> None:
    jobs = [((0, 0, w, h), False) for w, h in sizes]
    groups = _share_out(jobs, parts)
    assert sorted(i for g in groups for i in g) == list(range(len(jobs)))
    assert len(groups) == min(parts, len(jobs))
    if groups:
        loads = [sum(jobs[i][0][2] * jobs[i][0][3] for i in g) for g in groups]
        # Greedy largest-first: no group exceeds another by more than the largest job.
        assert max(loads) - min(loads) <= max(w * h for w, h in sizes)


def test_fit_budget_sends_lossy_always_and_lossless_while_it_fits() -> None:
    from rdesk.host.encoding.encode import EncodedRect
    from rdesk.host.encoding.jobs import fit_budget
    from rdesk.protocol.encodings import Encoding

    def rect(x: int, size: int, exact: bool, enc: Encoding = Encoding.WEBP) -> EncodedRect:
        return EncodedRect(x, 0, 64, 64, enc, b"x" * size, exact=exact)

    jpeg = rect(0, 50_000, False, Encoding.JPEG)
    big, small, last = rect(64, 30_000, True), rect(128, 5_000, True), rect(192, 9_000, True)
    kept, left = fit_budget([jpeg, big, small, last], 20_000)
    # The first lossless rect goes even over budget (progress); the next ones only if they fit.
    assert kept == [jpeg, big] and left == [small, last]
    kept, left = fit_budget([small, last, big], 20_000)
    assert kept == [small, last] and left == [big]
    assert fit_budget([], 1) == ([], [])
