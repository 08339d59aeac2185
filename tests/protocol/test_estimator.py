"""The link estimator's rate from large updates (rdesk/protocol/estimator.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.protocol.controller import Caps, Controller
from rdesk.protocol.estimator import BASE_FLOOR, HOLD_GAIN, Estimator


def test_link_rate_comes_from_one_large_slow_update() -> None:
    """A 540 kB refresh that took 8.7 s over a 512 kbit/s link with a 150 ms round trip tells
    the rate at once (the windowed throughput would call it 540 kB/s: one ack in a second)."""
    est = Estimator()
    est.on_sample(1.0, 0.15, 300)  # small: only the round trip; sets the minimum
    assert est.link_rate is None
    est.on_sample(10.0, 8.7, 540_000)
    assert est.link_rate is not None
    assert 60_000 < est.link_rate < 66_000  # 540 kB in 8.55 s
    assert est.peak_throughput(10.0) > 500_000  # what the windowed figure says


def test_link_rate_from_the_first_sample_counts_its_whole_round_trip() -> None:
    """The initial picture is often the first and largest update: with no earlier, smaller
    round trip, its own must not be taken as the base (that would read as sent in no time)."""
    est = Estimator()
    est.on_sample(9.0, 8.7, 540_000)
    assert est.link_rate is not None
    assert 60_000 < est.link_rate < 63_000


def test_link_rate_on_a_fast_link_is_not_understated_by_the_round_trip() -> None:
    est = Estimator()
    est.on_sample(1.0, 0.030, 300)
    est.on_sample(1.1, 0.051, 260_000)  # 260 kB at 100 Mbit/s: 21 ms beyond the 30 ms trip
    assert est.link_rate is not None
    assert est.link_rate > 10e6


def test_refresh_budget_follows_the_link_rate_not_an_inflated_peak() -> None:
    ctl = Controller(Caps(), now=0.0)
    ctl.on_ack(1.0, 0.15, 300)
    ctl.on_ack(10.0, 8.7, 540_000)
    assert ctl.refresh_budget(10.0) <= 66_000 * 0.25 + 1



def test_a_large_update_after_small_ones_does_not_zero_the_base() -> None:
    """Two small updates, then the 375 kB first picture over 2 Mbit/s (1.76 s), then small
    video frames whose round trip is 103 ms: the base is theirs, not 70 % of it (the picture,
    corrected by the 862 bytes a second of the first two acks, once read as a round trip of
    0 and held the base at its floor for the 10 s of the window)."""
    est = Estimator()
    est.on_sample(0.50, 0.52, 431)
    est.on_sample(0.51, 0.52, 431)
    est.on_sample(2.30, 1.76, 374_500)
    for i in range(20):
        est.on_sample(2.4 + i * 0.04, 0.103 + 0.002 * (i % 3), 3_000)
    assert est.min_rtt == 0.103
    assert est.base_rtt is not None and est.base_rtt > 0.09


def test_link_rate_is_re_read_as_the_smallest_round_trip_falls() -> None:
    """The first picture (375 kB, 1.76 s over 2 Mbit/s) after two small updates slowed by the
    session's start (520 ms): against them it reads 303 kB/s, above the link's 250 kB/s; once
    video frames show the 103 ms round trip, 227 kB/s."""
    est = Estimator()
    est.on_sample(0.50, 0.52, 431)
    est.on_sample(0.51, 0.52, 431)
    est.on_sample(2.30, 1.76, 374_500)
    assert est.link_rate == pytest.approx(374_500 / (1.76 - 0.52))
    for i in range(20):
        est.on_sample(2.4 + i * 0.04, 0.103, 3_000)
    assert est.link_rate == pytest.approx(374_500 / (1.76 - 0.103))
    assert est.link_rate < 250_000


def test_one_outlier_does_not_move_the_link_rate() -> None:
    """Large updates over 2 Mbit/s (250 kB/s), one of whose round trips came within a
    millisecond of the minimum (it read 20 MB/s): the rate stays the others'."""
    est = Estimator()
    est.on_sample(0.1, 0.100, 500)
    for i in range(4):
        est.on_sample(1.0 + i, 0.100 + 20_000 / 250_000, 20_000)
    est.on_sample(6.0, 0.101, 20_000)
    assert est.link_rate == pytest.approx(250_000)


# --- the viewer's hold time (ack.hold_us) --------------------------------------------------------

#: 10 Mbit/s with a 30 ms round trip, in bytes a second.
LINK = 10e6 / 8
TRIP = 0.030


def _frames(est: Estimator | Controller, paint: float, report: bool, *, start: float = 1.0,
            frames: int = 12, nbytes: int = 125_000) -> float:
    """A small update, then ``frames`` large ones 0.1 s apart over the clear link, each painted
    in ``paint`` s (a small one in 1 ms) and acknowledged after; the hold is reported when
    ``report``. Returns the time of the last ack."""
    def sample(now: float, size: int, painted: float) -> None:
        rtt = TRIP + size / LINK + painted
        hold = painted if report else 0.0
        if isinstance(est, Controller):
            est.on_ack(now, rtt, size, hold)
        else:
            est.on_sample(now, rtt, size, hold)

    sample(start, 300, 0.001)
    now = start
    for i in range(frames):
        now = start + 0.1 * (i + 1)
        sample(now, nbytes, paint)
    return now


def test_a_sample_with_its_hold_reads_the_link_as_one_without_decode() -> None:
    """Frames painted in 40 ms each, reported, read the same link rate and base as frames
    painted at once; unreported, the paint reads as the link's time (about 70 % of it)."""
    instant, held, unreported = Estimator(), Estimator(), Estimator()
    _frames(instant, 0.0, True)
    _frames(held, 0.040, True)
    _frames(unreported, 0.040, False)
    assert instant.link_rate == pytest.approx(LINK, rel=0.02)
    assert held.link_rate == pytest.approx(instant.link_rate, rel=0.01)
    assert unreported.link_rate is not None and unreported.link_rate < 0.75 * LINK
    assert held.base_rtt == pytest.approx(instant.base_rtt, abs=0.002)
    assert held.hold == pytest.approx(0.040, abs=0.005)
    # The in-flight window's round trip keeps the viewer's time: the update is held by it.
    assert held.min_rtt == unreported.min_rtt
    assert held.round_trip is not None and held.round_trip > TRIP + 0.1 + 0.035


def test_a_reported_paint_is_not_taken_for_a_queue() -> None:
    """A viewer that paints each large frame in 60 ms on a clear link: unreported, the paint
    reads as queueing delay and the level falls; reported, the level stays at the top."""
    held, unreported = Controller(Caps(), now=0.0), Controller(Caps(), now=0.0)
    _frames(held, 0.060, True, frames=30, nbytes=20_000)
    _frames(unreported, 0.060, False, frames=30, nbytes=20_000)
    assert held.level == 1.0 and held.decreases == 0
    assert unreported.decreases > 0 and unreported.level < 0.5
    # Its bytes in flight still cover the whole round trip, paint included.
    assert held.window_bytes(4.0) >= unreported.window_bytes(4.0) * 0.9


def test_a_hold_claiming_the_whole_round_trip_is_bounded() -> None:
    """A viewer that says it held every update as long as its whole round trip (a lie: then
    the link took no time) gets no net round trip below the base's floor, and a link rate of
    at most HOLD_GAIN times what the whole round trips read."""
    liar, honest = Estimator(), Estimator()
    liar.on_sample(1.0, 0.050, 300, 0.050)
    honest.on_sample(1.0, 0.050, 300)
    for i in range(10):
        now = 1.1 + 0.2 * i
        liar.on_sample(now, 0.150, 125_000, 10.0)
        honest.on_sample(now, 0.150, 125_000)
        assert liar.rtt is not None and liar.rtt >= BASE_FLOOR * liar.min_rtt - 1e-9  # type: ignore[operator]
    assert liar.link_rate is not None and honest.link_rate is not None
    assert liar.link_rate <= HOLD_GAIN * honest.link_rate * (1 + 1e-9)
    assert liar.base_rtt is not None and liar.base_rtt >= BASE_FLOOR * 0.050 - 1e-9


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(0, 2_000_000),
                          st.floats(0.0, 1e3) | st.just(float("inf"))),
                min_size=1, max_size=30))
def test_any_hold_keeps_the_estimates_bounded(samples: list[tuple[float, int, float]]) -> None:
    """Whatever holds a viewer claims (none, true, huge, infinite), each bounded hold lies in
    [0, rtt - BASE_FLOOR x the smallest whole round trip], the net round trips never read below
    that floor, and the link rate never exceeds HOLD_GAIN times what the same round trips read
    without any hold."""
    held, bare = Estimator(), Estimator()
    for i, (rtt, nbytes, hold) in enumerate(samples):
        now = 0.05 * i
        bounded = held.bounded_hold(rtt, hold)
        least = min([rtt] + ([held.min_rtt] if held.min_rtt is not None else []))
        assert 0.0 <= bounded <= max(0.0, rtt - BASE_FLOOR * least) + 1e-12
        held.on_sample(now, rtt, nbytes, hold)
        bare.on_sample(now, rtt, nbytes)
        assert held.min_rtt == bare.min_rtt  # the whole round trips are the viewer's as ever
        assert held.base_rtt is not None and held.min_rtt is not None
        assert held.base_rtt >= BASE_FLOOR * held.min_rtt - 1e-12
        if bare.link_rate is not None:
            assert held.link_rate is not None
            assert held.link_rate <= HOLD_GAIN * bare.link_rate * (1 + 1e-9) + 1e-6


def test_an_update_sent_behind_others_is_timed_from_the_previous_ack() -> None:
    """A pan's start on 10 Mbit/s / 30 ms (a traced run): four 35 kB pictures went back to
    back behind the first, and each round trip held the wait for those ahead of it; read whole,
    the link read 10.2 Mbit/s from the first and 5.45 from the median of five, and the stream
    started at half the link. The time since the previous ack bounds each one's own time."""
    est = Estimator()
    est.on_sample(0.05, 0.036, 431, hold=0.002)  # the still window
    # (ack time, round trip, bytes, hold, bytes queued ahead when it was sent)
    for now, rtt, nbytes, hold, queued in (
        (1.105, 0.0864, 35_792, 0.0247, 0),
        (1.251, 0.1288, 35_836, 0.0548, 0),
        (1.285, 0.141, 35_830, 0.0696, 35_836),
        (1.338, 0.183, 35_848, 0.0943, 71_666),
        (1.377, 0.1885, 35_888, 0.1049, 107_514),
    ):
        est.on_sample(now, rtt, nbytes, hold, queued)
    rate = est.link_rate
    assert rate is not None and 7e6 / 8 <= rate <= 12e6 / 8, rate * 8
