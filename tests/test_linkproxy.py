"""The emulated link's bottleneck carries its full rate, whatever its task's timers do."""

from __future__ import annotations

import pytest

from tests.linkproxy import on_wire_until


def test_a_late_wake_of_the_bottleneck_loses_no_link_time() -> None:
    # 100 chunks of 4 KiB all queued at t=0 on 10 Mbit/s; the emulator's task picks each
    # up 0.5 ms after the previous one left (a late asyncio timer). The link is busy
    # throughout, so the last one leaves at 100 chunk times: not 100 × (chunk + 0.5 ms),
    # which is what starting each chunk at the task's wake-up gave (77 % of the rate).
    rate, nbytes = 10e6, 4096
    free = 0.0
    for _ in range(100):
        free = on_wire_until(free, 0.0, nbytes, rate)  # whenever the task woke after it
    assert free == pytest.approx(100 * nbytes * 8 / rate)


def test_an_idle_link_starts_a_chunk_when_it_arrives() -> None:
    # Idle since t=1; a chunk arriving at t=5 leaves at 5 + its time on the wire.
    assert on_wire_until(1.0, 5.0, 1250, 10e6) == pytest.approx(5.001)
