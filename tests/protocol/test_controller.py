"""The bandwidth estimator and controller over a simulated link, with a fake clock.

The link model is a single bottleneck (``rate`` bytes/s, FIFO) plus a one-way ``delay`` (and
optional jitter) each way; the "screen" is full motion whose frame size depends on the
controller's quality and scale. Everything runs on simulated time, so nothing here depends on
how fast the machine is.
"""

from __future__ import annotations

import random

import pytest

from rdesk.protocol.controller import (
    MAX_WINDOW_UPDATES,
    MIN_QUALITY,
    UNMEASURED_WINDOW_BYTES,
    Caps,
    Controller,
)
from rdesk.protocol.estimator import Estimator
from rdesk.protocol.flow import InFlight

MBIT = 1_000_000 / 8  # bytes per second
#: Bytes of a full-scale frame at quality 80 (a 640x480 screen in full motion).
FULL_FRAME = 100_000


def frame_bytes(quality: int, scale: float) -> int:
    return max(500, int(FULL_FRAME * scale * scale * (0.2 + quality / 100)))


class Link:
    """A bottleneck of ``rate`` bytes/s with ``delay`` s each way, changeable at any time."""

    def __init__(self, rate: float, delay: float, jitter: float = 0.0, seed: int = 1) -> None:
        self.rate, self.delay, self.jitter = rate, delay, jitter
        self._free = 0.0
        self._last_arrival = 0.0
        self._rng = random.Random(seed)

    def send(self, now: float, nbytes: int) -> float:
        """Time the viewer's ack for an update of ``nbytes`` sent at ``now`` reaches the host."""
        self._free = max(self._free, now) + nbytes / self.rate
        extra = self._rng.uniform(0, self.jitter) if self.jitter else 0.0
        arrival = max(self._free + self.delay + extra, self._last_arrival)
        self._last_arrival = arrival
        return arrival + self.delay


class Sim:
    """A host sending full-motion frames to one viewer through a :class:`Link`."""

    def __init__(self, link: Link, caps: Caps | None = None) -> None:
        self.link = link
        self.ctl = Controller(caps, now=0.0)
        self.flow = InFlight(3)
        self.now = 0.0
        self.seq = 0
        self.acks: list[tuple[float, int]] = []
        self.sent_bytes = 0
        self.max_in_flight = 0
        self.max_queue = 0.0

    def run(self, seconds: float, step: float = 0.001) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            while self.acks and self.acks[0][0] <= self.now:
                _, seq = self.acks.pop(0)
                for sample in self.flow.on_ack(seq, self.now):
                    self.ctl.on_ack(self.now, sample.rtt, sample.nbytes,
                                    queued=sample.queued_before)
            self.ctl.update(self.now)
            can = self.flow.count == 0 or (
                self.flow.can_send() and self.flow.bytes < self.ctl.window_bytes(self.now)
            )
            if can and self.now >= self.ctl.next_send_at(self.now):
                size = frame_bytes(self.ctl.quality, self.ctl.scale)
                self.flow.on_sent(self.seq, self.now, size)
                self.ctl.on_round(self.now)
                self.ctl.on_sent(self.now, size)
                self.acks.append((self.link.send(self.now, size), self.seq))
                self.seq += 1
                self.sent_bytes += size
                self.max_in_flight = max(self.max_in_flight, self.flow.bytes)

    def watch(self, seconds: float) -> tuple[float, int]:
        """Run, returning the largest queueing delay and bytes in flight seen."""
        worst_delay, worst_bytes = 0.0, 0
        for _ in range(int(seconds / 0.05)):
            self.run(0.05)
            worst_delay = max(worst_delay, self.ctl.estimator.queue_delay)
            worst_bytes = max(worst_bytes, self.flow.bytes)
        return worst_delay, worst_bytes


# --- the estimator -----------------------------------------------------------------------------


def test_estimator_base_current_queue_and_throughput() -> None:
    est = Estimator(base_window=10.0, rate_window=1.0)
    assert est.base_rtt is None and est.queue_delay == 0.0 and est.throughput(0.0) == 0.0
    for i in range(10):
        est.on_sample(i * 0.1, 0.05, 10_000)
    # The first sample is taken raw; later ones are corrected by their transmit time at the
    # peak throughput (10 kB at 100 kB/s: 0.1 s), floored at 70 % of the raw minimum.
    assert est.min_rtt == pytest.approx(0.05)
    assert est.base_rtt == pytest.approx(0.035)
    assert est.throughput(0.95) == pytest.approx(100_000)
    for i in range(10, 30):
        est.on_sample(i * 0.1, 0.25, 10_000)
    assert est.base_rtt == pytest.approx(0.035)
    assert est.rtt == pytest.approx(0.25, abs=0.01)
    assert est.queue_delay == pytest.approx(0.215, abs=0.01)


def test_estimator_base_rtt_forgets_an_old_path() -> None:
    est = Estimator(base_window=2.0)
    est.on_sample(0.0, 0.01, 100)
    for i in range(1, 40):
        est.on_sample(i * 0.1, 0.1, 100)
    assert est.min_rtt == pytest.approx(0.1)
    assert 0.069 <= (est.base_rtt or 0) <= 0.1
    assert est.queue_delay <= 0.03


def test_estimator_throughput_window_slides() -> None:
    est = Estimator(rate_window=1.0)
    est.on_sample(0.0, 0.01, 50_000)
    assert est.throughput(0.5) == 50_000
    assert est.throughput(1.5) == 0
    assert est.peak_throughput(1.5) == 50_000


# --- the controller over scripted links --------------------------------------------------------


def test_steady_fast_link_reaches_full_quality() -> None:
    sim = Sim(Link(50 * MBIT, 0.005))
    sim.run(3.0)
    assert sim.ctl.quality == 80 and sim.ctl.scale == 1.0
    assert sim.ctl.estimator.queue_delay < sim.ctl.high
    assert sim.ctl.fps == 60


def test_steady_slow_link_settles_low_without_a_standing_queue() -> None:
    sim = Sim(Link(1 * MBIT, 0.02))
    sim.run(5.0)
    worst_delay, worst_bytes = sim.watch(5.0)
    ctl = sim.ctl
    assert ctl.scale < 1.0 or ctl.quality < 80
    # The queue stays near the base: within a few of the controller's own thresholds.
    assert worst_delay < 4 * ctl.high, (worst_delay, ctl.snapshot(sim.now))
    assert worst_bytes <= max(ctl.window_bytes(sim.now), frame_bytes(80, 1.0))


def test_step_down_then_up() -> None:
    link = Link(50 * MBIT, 0.01)
    sim = Sim(link)
    sim.run(3.0)
    assert sim.ctl.quality == 80 and sim.ctl.scale == 1.0
    link.rate = 1 * MBIT
    sim.run(4.0)
    ctl = sim.ctl
    assert ctl.decreases > 0
    assert ctl.scale < 1.0, ctl.snapshot(sim.now)
    worst_delay, worst_bytes = sim.watch(3.0)
    assert worst_delay < 4 * ctl.high, (worst_delay, ctl.snapshot(sim.now))
    # Bytes in flight: about what the link carries in a few base RTTs, not a growing backlog.
    assert worst_bytes < 3 * 1 * MBIT * 0.25
    link.rate = 50 * MBIT
    sim.run(2.5)
    assert ctl.quality == 80 and ctl.scale == 1.0, ctl.snapshot(sim.now)


def test_jitter_does_not_collapse_the_picture() -> None:
    sim = Sim(Link(20 * MBIT, 0.01, jitter=0.01, seed=7))
    sim.run(3.0)
    levels = []
    for _ in range(40):
        sim.run(0.1)
        levels.append(sim.ctl.level)
    assert min(levels) > 0.5, levels
    assert sim.ctl.scale == 1.0


def test_bandwidth_cap_is_respected_and_lowers_quality() -> None:
    sim = Sim(Link(50 * MBIT, 0.005), Caps(max_quality=80, max_bandwidth=2_000_000))
    sim.run(3.0)
    before = sim.sent_bytes
    sim.run(5.0)
    sent_rate = (sim.sent_bytes - before) / 5.0
    assert sent_rate <= 2_000_000 / 8 * 1.05
    assert sim.ctl.level < 1.0


def test_caps_bound_quality_and_fps() -> None:
    sim = Sim(Link(50 * MBIT, 0.005), Caps(max_quality=50, max_fps=10))
    sim.run(2.0)
    assert sim.ctl.quality == 50
    assert sim.ctl.fps == 10
    # 10 fps cap: about 20 updates in 2 s.
    assert sim.seq <= 22


def test_quality_never_below_minimum_and_level_bounded() -> None:
    sim = Sim(Link(0.1 * MBIT, 0.1))
    sim.run(30.0)
    assert 0.0 <= sim.ctl.level <= 1.0
    assert sim.ctl.quality >= MIN_QUALITY
    assert sim.ctl.scale == 0.25
    assert 1 <= sim.ctl.fps <= 60


def test_idle_link_does_not_climb() -> None:
    ctl = Controller(now=0.0, level=0.3)
    ctl.on_ack(0.0, 0.02, 1000)
    for i in range(1, 50):
        ctl.update(1.0 + i * 0.1)  # no acks for a long time: no evidence the link is clear
    assert ctl.level == pytest.approx(0.3)


def test_frame_rate_slots_keep_time_despite_encode_time_and_late_timers() -> None:
    """Rounds start 60 times a second even when each takes 8 ms to encode and the timer
    wakes 1 ms late (counting the cap from each send would give 1 / (16.7 + 9 ms) ≈ 39)."""
    ctl = Controller(Caps(max_fps=60), now=0.0)
    now, starts = 0.0, []
    for _ in range(121):
        now = max(now, ctl.next_send_at(now)) + 0.001
        ctl.on_round(now)
        starts.append(now)
        now += 0.008
        ctl.on_sent(now, 300_000)
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 59.0 <= rate <= 60.5


def test_frame_rate_slots_make_up_no_burst_after_a_pause() -> None:
    ctl = Controller(Caps(max_fps=50), now=0.0)
    ctl.on_round(0.0)
    ctl.on_round(5.0)  # the screen was still for seconds
    assert ctl.next_send_at(5.0) - 5.0 >= 0.5 / 50 - 1e-9


def test_rounds_exempt_from_the_cap_never_push_the_next_slot_beyond_one_interval() -> None:
    """Scroll rounds go unpaced, 30 a second, at the lowest level's 5 fps cap: the first paced
    round after them waits one interval at most, not the sum of theirs."""
    ctl = Controller(Caps(max_fps=60), now=0.0, level=0.0)
    assert ctl.fps == pytest.approx(5.0)
    now = 1.0
    for _ in range(60):
        ctl.on_round(now)  # not waiting for next_send_at
        now += 1 / 30
    assert ctl.next_send_at(now) <= now - 1 / 30 + 0.2 + 1e-9


def test_a_video_round_is_paced_at_its_own_rate_not_the_level() -> None:
    """At the lowest level the frame-rate cap is max/12; a video round (whose bytes its
    stream's bitrate sets) takes the next slot at least at the rate it asks for, within the
    cap."""
    ctl = Controller(Caps(max_fps=60), now=0.0, level=0.0)
    assert ctl.fps == pytest.approx(5.0)
    ctl.on_round(1.0)
    assert ctl.next_send_at(1.0) == pytest.approx(1.2)
    ctl = Controller(Caps(max_fps=60), now=0.0, level=0.0)
    ctl.on_round(2.0, 30.0)
    assert ctl.next_send_at(2.0) == pytest.approx(2.0 + 1 / 30)
    ctl = Controller(Caps(max_fps=20), now=0.0, level=0.0)
    ctl.on_round(2.0, 30.0)  # never above the cap
    assert ctl.next_send_at(2.0) == pytest.approx(2.05)
    ctl = Controller(Caps(max_fps=60), now=0.0, level=1.0)
    ctl.on_round(2.0, 30.0)  # nor below the level's: a 30 fps source's jitter needs the room
    assert ctl.next_send_at(2.0) == pytest.approx(2.0 + 1 / 60)


def test_window_updates_cover_a_round_trip_of_rounds() -> None:
    ctl = Controller(now=0.0)
    assert ctl.window_updates(30.0, 3) == 3  # nothing measured: the host's setting
    for i in range(20):
        ctl.on_ack(i * 0.05, 0.12, 5_000)
    needed = int(30.0 * (0.12 + ctl.high)) + 2
    assert needed > 3 and ctl.window_updates(30.0, 3) == needed
    assert ctl.window_updates(2.0, 3) == 3  # a slow rate needs no more than the setting
    assert ctl.window_updates(1000.0, 3) == MAX_WINDOW_UPDATES


def _paced_frames(window: int | None, seconds: float = 10.0) -> int:
    """Rounds of 6 kB (a 1.4 Mbit/s stream at 30 fps) sent through 2 Mbit/s, 40 ms each way,
    with 30 ms of paint before each ack; the count window fixed at ``window`` or, with
    ``None``, :meth:`Controller.window_updates` of the host's 3."""
    link, ctl, flow = Link(2 * MBIT, 0.040), Controller(now=0.0), InFlight(3)
    acks: list[tuple[float, int]] = []
    now, seq, rounds, step = 0.0, 0, 0, 0.001
    while now < seconds:
        now += step
        while acks and acks[0][0] <= now:
            _, done = acks.pop(0)
            for sample in flow.on_ack(done, now):
                ctl.on_ack(now, sample.rtt, sample.nbytes)
            flow.window = window or ctl.window_updates(30.0, 3)
        if flow.can_send() and now >= ctl.next_send_at(now):
            flow.on_sent(seq, now, 6_000)
            ctl.on_round(now, 30.0)
            acks.append((link.send(now, 6_000) + 0.030, seq))
            seq, rounds = seq + 1, rounds + 1
    return rounds


def test_a_long_round_trip_does_not_cap_the_frame_rate() -> None:
    """3 updates in flight over a 134 ms round trip (80 ms, 24 ms of transmit, 30 ms of
    paint) hold rounds to 3 / 0.134 = 22 a second; a round trip's worth lets all 30 go."""
    fixed, grown = _paced_frames(3) / 10.0, _paced_frames(None) / 10.0
    assert fixed < 23
    assert grown >= 29


def test_the_picture_starts_small_until_the_link_carried_something_large() -> None:
    """Before any evidence of the link's rate, a full-screen change at full quality could be
    seconds of nothing else on a slow link: half scale, lowest quality, until it carried
    16 kB (one large update, or that much in a second of small ones)."""
    ctl = Controller(now=0.0)
    assert ctl.level == 1.0 and ctl.fps == 60.0
    ctl.on_ack(0.5, 0.08, 431)
    assert (ctl.scale, ctl.quality) == (0.5, MIN_QUALITY)
    ctl.on_ack(0.6, 0.09, 40_000)
    assert (ctl.scale, ctl.quality) == (1.0, 80)
    small = Controller(now=0.0)
    for i in range(20):
        small.on_ack(i * 0.04, 0.01, 1_000)
    assert small.estimator.carried and small.quality == 80


def test_the_window_holds_a_round_trip_of_the_measured_link_after_a_still_screen() -> None:
    """After a still screen the viewer received next to nothing, so two bandwidth-delay
    products of what it received held a pan's first pictures (35 kB each at the start cap)
    to one per round trip, 10 a second on 10 Mbit/s / 30 ms. Once one of them measured the
    link, the window holds what the link carries in a round trip: three of them."""
    ctl = Controller(now=0.0)
    ctl.on_ack(0.3, 0.036, 431, hold=0.002)  # the still window's first picture
    # 1 s later the pan's first picture, 35 kB: 28 ms on the link, 37 ms painting.
    ctl.on_ack(1.3, 0.099, 35_792, hold=0.037)
    rate = ctl.estimator.link_rate
    assert rate is not None and 8 * MBIT <= rate <= 12 * MBIT
    assert ctl.estimator.throughput(1.3) * 2 * 0.12 < 16 * 1024  # what the old rule read
    # (a third goes while two are in flight: one more may leave while the bytes are under it)
    assert ctl.window_bytes(1.3) > 2 * 35_792
    # Unmeasured, the window is the unmeasured one (two start-cap pictures, no more).
    fresh = Controller(now=0.0)
    fresh.on_ack(0.3, 0.036, 431)
    assert fresh.window_bytes(0.3) == UNMEASURED_WINDOW_BYTES


def test_a_pans_second_picture_does_not_wait_for_the_first_ones_ack() -> None:
    """Before any large update was acked there is no link rate, and the window was 16 kB: a
    pan's first picture (35 kB at the start cap) went alone, and the frame grabbed meanwhile
    waited a round trip for its ack (10 Mbit/s / 30 ms). Now a second goes beside it; a third
    waits, so an unmeasured slow link holds at most two of them."""
    ctl = Controller(now=0.0)
    ctl.on_ack(0.3, 0.036, 431, hold=0.002)  # the still window's first picture
    assert ctl.estimator.link_rate is None
    flight = InFlight(window=7)
    flight.window_bytes = ctl.window_bytes(1.0)
    flight.on_sent(1, 1.0, 35_792)
    assert flight.can_send()  # the second picture goes
    flight.on_sent(2, 1.033, 35_836)
    assert not flight.can_send()  # the third waits for an ack


def test_a_pan_after_a_still_screen_on_a_slow_link_builds_no_queue() -> None:
    """The link's bandwidth-delay product in flight, on 2 Mbit/s / 80 ms, after a still
    screen: the queue stays within the controller's threshold once the level settles."""
    sim = Sim(Link(2 * MBIT, 0.04))
    sim.run(0.2, step=0.001)  # the first frames measure the link
    sim.run(6.0)
    assert sim.ctl.estimator.link_rate is not None
    assert sim.ctl.window_bytes(sim.now) <= 2 * MBIT * 0.5
    queue = sim.ctl.estimator.queue_delay
    assert queue <= sim.ctl.high, queue


def test_a_link_cut_to_small_pictures_takes_the_old_link_out_of_the_window() -> None:
    """Only large updates move the link rate. Cut from 50 to 1 Mbit/s with the large pictures
    already through, the level falls and the pictures stay below RATE_SAMPLE_BYTES: the rate
    kept reading 50 Mbit/s, and the byte window held that link's round trip, 294 kB, 2.4 s of
    the new link (tests/e2e/test_adaptation.py). The queue the cut built takes the link rate
    out of the window until a large update confirms it."""
    ctl = Controller(now=0.0)
    now = 0.0
    ctl.on_ack(now, 0.010, 431)  # a small update: the round trip without transmit
    for _ in range(10):  # 30 kB pictures on 50 Mbit/s, 10 ms round trips
        now += 0.033
        ctl.on_ack(now, 0.010 + 30_000 / (50 * MBIT), 30_000)
    assert (ctl.estimator.link_rate or 0) > 20 * MBIT and not ctl.link_doubted
    for i in range(40):  # the cut: 4 kB pictures queue behind each other on 1 Mbit/s
        now += 0.033
        ctl.on_ack(now, 0.010 + min(0.5, 0.03 * (i + 1)), 4_000)
    assert (ctl.estimator.link_rate or 0) > 20 * MBIT  # nothing large since: the old link
    assert ctl.link_doubted
    assert ctl.window_bytes(now) < 1 * MBIT  # under a second of the new link


def test_a_large_update_that_agrees_confirms_the_link_again() -> None:
    """A queue doubts the link rate; large updates on the new link move its median, and once
    the newest reads at least LINK_AGREES of it the window holds the link's round trip again."""
    ctl = Controller(now=0.0)
    ctl.on_ack(0.1, 0.012, 431)
    ctl.on_ack(0.2, 0.040, 100_000)  # 28 ms for 100 kB: about 28 Mbit/s
    assert not ctl.link_doubted
    ctl.on_ack(0.5, 0.400, 2_000)  # a queue: the link may carry less now
    assert ctl.link_doubted
    assert ctl.window_bytes(0.5) < (ctl.estimator.link_rate or 0) * (ctl.estimator.base_rtt or 0)
    now = 1.0
    while ctl.link_doubted and now < 3.0:  # large updates on a 2.5 Mbit/s link, no queue
        for _ in range(5):  # quick small acks: the queue signal falls back
            now += 0.02
            ctl.on_ack(now, 0.012, 300)
        now += 0.1
        ctl.on_ack(now, 0.012 + 100_000 / (2.5 * MBIT), 100_000)
    assert not ctl.link_doubted
    assert 2 * MBIT <= (ctl.estimator.link_rate or 0) <= 3 * MBIT
    trip = (ctl.estimator.base_rtt or 0.0) + ctl.estimator.hold + ctl.high
    assert ctl.window_bytes(now) >= int((ctl.estimator.link_rate or 0) * trip)
