"""Flow control: the in-flight window, cumulative acks, RTT estimates, stall detection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from rdesk.protocol.flow import InFlight, Sample


@pytest.mark.parametrize("window", [0, -1, limits.MAX_IN_FLIGHT + 1])
def test_window_bounds(window: int) -> None:
    with pytest.raises(LocalProtocolError):
        InFlight(window)


def test_window_enforced() -> None:
    flow = InFlight(window=3)
    for seq in range(3):
        assert flow.can_send()
        flow.on_sent(seq, now=0.0, nbytes=100)
    assert not flow.can_send()
    assert flow.count == 3
    assert flow.bytes == 300
    with pytest.raises(LocalProtocolError):
        flow.on_sent(3, now=0.0, nbytes=100)
    assert flow.count == 3  # the refused update was not recorded
    flow.on_ack(0, now=0.1)
    assert flow.can_send()
    flow.on_sent(3, now=0.1, nbytes=100)
    assert not flow.can_send()


def test_max_window() -> None:
    flow = InFlight(window=limits.MAX_IN_FLIGHT)
    for seq in range(limits.MAX_IN_FLIGHT):
        flow.on_sent(seq, 0.0, 1)
    assert not flow.can_send()


def test_sequence_must_increase() -> None:
    flow = InFlight(window=4)
    flow.on_sent(5, 0.0, 1)
    with pytest.raises(LocalProtocolError):
        flow.on_sent(5, 0.0, 1)
    with pytest.raises(LocalProtocolError):
        flow.on_sent(4, 0.0, 1)
    flow.on_sent(9, 0.0, 1)  # gaps are allowed
    assert flow.count == 2


def test_cumulative_ack() -> None:
    flow = InFlight(window=4)
    flow.on_sent(1, now=1.0, nbytes=10)
    flow.on_sent(2, now=2.0, nbytes=20)
    flow.on_sent(3, now=3.0, nbytes=30)
    samples = flow.on_ack(2, now=4.0)
    assert samples == [Sample(1, 3.0, 10, 0), Sample(2, 2.0, 20, 10)]
    assert flow.count == 1
    assert flow.bytes == 30
    assert flow.acked_bytes == 30
    assert flow.on_ack(3, now=4.5) == [Sample(3, 1.5, 30, 30)]
    assert flow.count == 0
    assert flow.acked_bytes == 60


def test_ack_with_gaps_in_sequence() -> None:
    flow = InFlight(window=4)
    flow.on_sent(10, 0.0, 1)
    flow.on_sent(20, 0.0, 1)
    # An ack between two sent numbers covers the ones below it.
    assert [s.seq for s in flow.on_ack(15, 1.0)] == [10]
    assert [s.seq for s in flow.on_ack(20, 1.0)] == [20]


def test_ack_of_never_sent_refused() -> None:
    flow = InFlight(window=4)
    with pytest.raises(RemoteProtocolError):
        flow.on_ack(0, 0.0)
    flow.on_sent(0, 0.0, 1)
    with pytest.raises(RemoteProtocolError):
        flow.on_ack(1, 0.0)
    assert flow.count == 1


def test_ack_of_already_acked_refused() -> None:
    flow = InFlight(window=4)
    flow.on_sent(0, 0.0, 1)
    flow.on_sent(1, 0.0, 1)
    flow.on_ack(1, 0.5)
    for seq in (0, 1):
        with pytest.raises(RemoteProtocolError):
            flow.on_ack(seq, 0.6)
    flow.on_sent(2, 1.0, 1)
    with pytest.raises(RemoteProtocolError):
        flow.on_ack(1, 1.1)
    assert flow.count == 1


def test_rtt_estimates_with_fake_clock() -> None:
    flow = InFlight(window=1)
    assert flow.srtt is None and flow.min_rtt is None
    flow.on_sent(0, now=100.0, nbytes=1)
    flow.on_ack(0, now=100.2)
    assert flow.srtt == pytest.approx(0.2)
    assert flow.min_rtt == pytest.approx(0.2)
    flow.on_sent(1, now=101.0, nbytes=1)
    flow.on_ack(1, now=101.6)
    # RFC 6298-style EWMA, alpha = 1/8.
    assert flow.srtt == pytest.approx(0.875 * 0.2 + 0.125 * 0.6)
    assert flow.min_rtt == pytest.approx(0.2)
    flow.on_sent(2, now=102.0, nbytes=1)
    flow.on_ack(2, now=102.05)
    assert flow.min_rtt == pytest.approx(0.05)


def test_clock_going_backwards_gives_zero_rtt() -> None:
    flow = InFlight(window=1)
    flow.on_sent(0, now=5.0, nbytes=1)
    (sample,) = flow.on_ack(0, now=4.0)
    assert sample.rtt == 0.0
    assert flow.min_rtt == 0.0


def test_oldest_age_and_check_stalled() -> None:
    flow = InFlight(window=2)
    assert flow.oldest_age(1000.0) == 0.0
    flow.check_stalled(1000.0, timeout=1.0)  # nothing in flight: never stalled
    flow.on_sent(0, now=10.0, nbytes=1)
    flow.on_sent(1, now=11.0, nbytes=1)
    assert flow.oldest_age(12.0) == pytest.approx(2.0)
    flow.check_stalled(15.0, timeout=5.0)  # exactly at the timeout: not yet
    with pytest.raises(RemoteProtocolError) as info:
        flow.check_stalled(15.01, timeout=5.0)
    assert info.value.code is CloseCode.UNRESPONSIVE
    flow.on_ack(0, now=15.5)
    assert flow.oldest_age(16.0) == pytest.approx(5.0)
    flow.check_stalled(16.0, timeout=5.0)
    flow.on_ack(1, now=16.5)
    flow.check_stalled(1e9, timeout=5.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5), st.floats(0, 10)), max_size=60),
       st.integers(1, 8))
def test_random_sends_and_acks(ops: list[tuple[bool, int, float]], window: int) -> None:
    """Model check: the window is never exceeded, acks cover exactly what they should."""
    flow = InFlight(window)
    now = 0.0
    next_seq = 0
    outstanding: list[int] = []
    last_acked = -1
    for is_send, step, dt in ops:
        now += dt
        if is_send:
            seq = next_seq + step - 1
            if flow.can_send():
                flow.on_sent(seq, now, step)
                outstanding.append(seq)
                next_seq = seq + 1
            else:
                with pytest.raises(LocalProtocolError):
                    flow.on_sent(seq, now, step)
        else:
            seq = last_acked + step
            if outstanding and seq <= max(outstanding):
                samples = flow.on_ack(seq, now)
                covered = [s for s in outstanding if s <= seq]
                assert [s.seq for s in samples] == covered
                outstanding = [s for s in outstanding if s > seq]
                last_acked = seq
            else:
                with pytest.raises(RemoteProtocolError):
                    flow.on_ack(seq, now)
        assert flow.count == len(outstanding) <= window
        assert flow.can_send() == (len(outstanding) < window)


def test_a_key_unit_that_fits_the_byte_window_counts_half_of_it() -> None:
    """A start picture (35 kB) in flight, then a 97 kB key unit: the next frame may go while
    both are unacknowledged (35 + 50 < 100 kB); the same bytes not flagged as a key unit, or
    a key unit larger than the window, hold it until an ack."""
    flow = InFlight(window=8)
    flow.window_bytes = 100_000
    flow.on_sent(0, 0.0, 35_000)
    flow.on_sent(1, 0.01, 97_000, key_bytes=96_900)
    assert flow.can_send() and flow.bytes == 132_000  # the samples still see every byte
    plain = InFlight(window=8)
    plain.window_bytes = 100_000
    plain.on_sent(0, 0.0, 35_000)
    plain.on_sent(1, 0.01, 97_000)
    assert not plain.can_send()
    large = InFlight(window=8)
    large.window_bytes = 100_000
    large.on_sent(0, 0.0, 35_000)
    large.on_sent(1, 0.01, 150_000, key_bytes=149_900)
    assert not large.can_send()
    # Acknowledged, a key unit spares nothing any more: the frames behind it count whole.
    flow.on_sent(2, 0.02, 30_000)
    flow.on_ack(1, 0.1)
    flow.on_sent(3, 0.11, 80_000)
    assert flow.bytes == 110_000 and not flow.can_send()


def test_key_bytes_must_be_within_the_update() -> None:
    flow = InFlight(window=4)
    with pytest.raises(LocalProtocolError):
        flow.on_sent(0, 0.0, 100, key_bytes=101)
    with pytest.raises(LocalProtocolError):
        flow.on_sent(0, 0.0, 100, key_bytes=-1)
