"""The link estimator's rate from large updates (rdesk/protocol/estimator.py)."""

from __future__ import annotations

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

