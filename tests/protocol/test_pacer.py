"""rdesk/protocol/pacer.py: a transfer queues about half a frame ahead of input, keeps its link
busy, and is not talked down by round trips a busy CPU stretches. Simulated links (pure: the
pacer takes ``now``)."""

from __future__ import annotations

import heapq
import itertools
import random
from typing import NamedTuple

import pytest

from rdesk.protocol.pacer import BW_ROUNDS, MIN_CHUNK, QUEUE_TARGET, RATE_WINDOW, Pacer
from rdesk.protocol.transfer import (
    CHUNK,
    CREDIT_BATCH,
    WINDOW,
    Receiving,
    Sending,
    XferCredit,
    XferData,
)


class _Run(NamedTuple):
    throughput: float  # bytes/s delivered
    worst: float  # the longest wait at the bottleneck, after the first quarter (s)
    mean_queue: float  # the wait a key arriving at a random time has, on average (s)
    budget: float  # the pacer's at the end (bytes)
    largest: int  # the largest chunk sent after the first quarter


def _simulate(rate: float, one_way: float, jitter: float = 0.0, seed: int = 1) -> _Run:
    """A sender with credit and a Pacer (which picks the chunk sizes) over a link of ``rate``
    bytes/s and ``one_way`` delay; the receiver stores at once. ``jitter``: each credit comes
    back up to that many seconds late (uniform; order kept), as when the receiver's or the
    sender's loop is busy — delay that is not queue at the bottleneck."""
    seconds = min(20.0, 20_000 * CHUNK / rate)  # about 20000 chunks at most
    late = random.Random(seed)
    pacer = Pacer()
    sender, receiver = Sending(1, 1 << 40), Receiving(1, 1 << 40)
    events: list[tuple[float, int, str, object]] = []
    order = itertools.count()
    now, link_free, worst, delivered, largest, last_credit = 0.0, 0.0, 0.0, 0, 0, 0.0
    waited = 0.0  # the integral over time of the bottleneck's backlog, after the first quarter
    grant = receiver.initial_credit()
    assert grant is not None
    sender.on_credit(grant)
    while now < seconds:
        while sender.credit and pacer.allows(step := pacer.chunk_size()):
            message = sender.chunk(b"x" * step)
            pacer.on_sent(step, now)
            start = max(now, link_free)  # the bottleneck's queue
            if now > seconds / 4:
                worst = max(worst, start - now)
                largest = max(largest, step)
            link_free = start + step / rate
            heapq.heappush(events, (link_free + one_way, next(order), "data", message))
        then, (now, _, kind, arrived) = now, heapq.heappop(events)
        if then > seconds / 4 and link_free > then:  # the backlog drains until ``now``
            waited += ((link_free - then) ** 2 - (link_free - min(link_free, now)) ** 2) / 2
        if kind == "data":
            assert isinstance(arrived, XferData)
            delivered += len(receiver.on_data(arrived))
            back = receiver.stored()
            if back is not None:
                due = max(now + one_way + late.uniform(0.0, jitter), last_credit)
                last_credit = due
                heapq.heappush(events, (due, next(order), "credit", back))
        else:
            assert isinstance(arrived, XferCredit)
            sender.on_credit(arrived)
            pacer.on_credit(arrived.chunks, now)
    return _Run(delivered / now, worst, waited / (now - seconds / 4), pacer.budget, largest)


@pytest.mark.parametrize(("rate", "one_way"), [(10e6 / 8, 0.010), (2e6 / 8, 0.040),
                                               (100e6 / 8, 0.002), (1e9 / 8, 0.0002),
                                               (100e6 / 8, 0.025)])
def test_the_pacer_keeps_the_queue_under_one_frame_and_the_link_busy(rate: float,
                                                                     one_way: float) -> None:
    throughput, worst, _, budget, largest = _simulate(rate, one_way)
    window_limit = WINDOW * largest / (2 * one_way + largest / rate)  # credit's own ceiling
    assert throughput >= 0.9 * min(rate, window_limit)
    # Queueing ahead of a key: the target, plus three chunks' serialization (a batch of two
    # sent together, and the one whose credit the receiver holds back, which the budget
    # counts): under one 60 Hz frame from 10 Mbit/s up (below, one smallest chunk alone
    # takes 16 ms at 2 Mbit/s).
    assert worst <= QUEUE_TARGET + 3 * largest / rate + 1e-9, worst
    if rate >= 10e6 / 8:
        assert worst < 1 / 60, worst
    assert budget >= 2 * MIN_CHUNK


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("jitter", "share"), [(0.015, 0.85), (0.020, 0.7)])
def test_round_trips_a_busy_cpu_stretches_do_not_talk_the_pacer_down(
        jitter: float, share: float, seed: int) -> None:
    # The benchmark's link (10 Mbit/s, 10 ms each way) with each credit up to 15 or 20 ms
    # late: on the loaded test machine the round trips measured there were 26 ms at least,
    # 37-40 ms at the median, 47 ms at the 90th percentile — a busy CPU, not queue. An
    # average rate fell with them (the pacer before: 75 % and 50 % of the link here, 64-69 %
    # in the benchmark); the largest recent sample holds the link's rate (89-91 % and 73-74 %
    # here: the rest is what a target of 6.25 ms cannot cover of a round trip 20 ms longer).
    rate = 10e6 / 8
    run = _simulate(rate, 0.010, jitter=jitter, seed=seed)
    assert run.throughput >= share * rate, run.throughput / rate
    assert run.largest <= 2 * MIN_CHUNK  # small chunks still: a slow link
    # What a key waits for at the bottleneck, on average: about the target (late credits
    # come in bursts, and the sender answers a burst with one; then the link drains).
    assert run.mean_queue <= QUEUE_TARGET + 2 * MIN_CHUNK / rate, run.mean_queue


@pytest.mark.parametrize(("rate", "one_way", "low", "high"), [
    (2e6 / 8, 0.040, MIN_CHUNK, MIN_CHUNK),   # a slow link: the smallest chunks
    (10e6 / 8, 0.010, MIN_CHUNK, 8 * 1024),
    (1e9 / 8, 0.0002, 64 * 1024, CHUNK),     # loopback-like: large chunks, few messages
])
def test_the_pacer_picks_small_chunks_on_slow_links_and_large_ones_on_fast(
        rate: float, one_way: float, low: int, high: int) -> None:
    largest = _simulate(rate, one_way).largest
    assert low <= largest <= high, largest


def test_without_the_pacer_a_window_queues_far_longer_on_a_slow_link() -> None:
    # What the pacer is for: credit alone lets a whole window queue (16 chunks of 16 KiB: 256 KiB,
    # 210 ms at 10 Mbit/s).
    assert WINDOW * 16 * 1024 / (10e6 / 8) > 8 * QUEUE_TARGET


def test_the_pacer_starts_slowly_until_it_has_measured() -> None:
    pacer = Pacer()
    pacer.on_credit(WINDOW, 0.0)  # the first grant confirms nothing
    assert pacer.chunk_size() == MIN_CHUNK and pacer.budget == 4 * MIN_CHUNK
    for _ in range(4):
        assert pacer.allows(MIN_CHUNK)
        pacer.on_sent(MIN_CHUNK, 1.0)
    assert not pacer.allows(MIN_CHUNK)
    pacer.on_credit(2, 1.1)
    assert pacer.min_rtt == pytest.approx(0.1) and pacer.rate is None  # one sample: no rate
    pacer.on_credit(2, 1.2)
    rate = 2 * MIN_CHUNK / 0.1
    assert pacer.rate == pytest.approx(rate)
    # The round trip's bytes, the target's, and the credit a receiver holds back (one chunk).
    held_back = (CREDIT_BATCH - 1) * MIN_CHUNK
    assert pacer.budget == pytest.approx(rate * (0.1 + QUEUE_TARGET) + held_back)
    assert pacer.chunk_size() == MIN_CHUNK  # a slow link: the smallest chunks


def test_credits_read_in_a_burst_do_not_inflate_the_rate() -> None:
    # The sender's loop was busy: 1 MB/s of credit, read 2 credits at a time 10 µs apart
    # every 32 ms. Rated credit by credit that is 1.6 GB/s, and a budget (chunks in flight
    # ahead of a key) 1600 times too large; over a window (RATE_WINDOW, or a round trip) it
    # stays the rate it is.
    pacer = Pacer()
    now = 0.0
    for _ in range(400):
        for _ in range(4):
            pacer.on_sent(8192, now)
        for _ in range(2):
            pacer.on_credit(2, now)
            now += 1e-5
        now += 4 * 8192 / 1e6 - 2e-5
    assert pacer.rate is not None and 0.8e6 < pacer.rate < 1.25e6, pacer.rate


def test_credits_come_late_then_together_the_rate_is_what_was_sent() -> None:
    # Chunks sent at 1 MB/s, their credits held back 40 ms by a busy loop and then read all
    # at once: over the acks' own time that is many times the rate; bytes are never
    # delivered faster than they were sent.
    pacer = Pacer()
    now, sent_at = 0.0, 0.0
    for _ in range(100):
        for _ in range(10):
            pacer.on_sent(8192, sent_at)
            sent_at += 8192 / 1e6
        now = sent_at + 0.040
        for _ in range(5):
            pacer.on_credit(2, now)
            now += 1e-4
    assert pacer.rate is not None and pacer.rate < 1.1e6, pacer.rate


def test_the_rate_follows_a_link_that_slows_down() -> None:
    # The largest sample is kept BW_ROUNDS rate windows, no longer: a link that drops from
    # 1 MB/s to 0.25 MB/s is rated at its new rate within a second.
    pacer = Pacer()
    now = 0.0

    def run(rate: float, seconds: float) -> None:
        nonlocal now
        end = now + seconds
        while now < end:
            pacer.on_sent(2 * 4096, now)
            now += 2 * 4096 / rate
            pacer.on_credit(2, now)

    run(1e6, 2.0)
    assert pacer.rate == pytest.approx(1e6, rel=0.05)
    run(0.25e6, BW_ROUNDS * RATE_WINDOW + 0.5)
    assert pacer.rate == pytest.approx(0.25e6, rel=0.05)
