"""The link estimator's rate from large updates (rdesk/protocol/estimator.py)."""

from __future__ import annotations

import pytest

from rdesk.protocol.controller import Caps, Controller
from rdesk.protocol.estimator import Estimator


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
