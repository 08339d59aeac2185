"""Per-viewer flow control: updates in flight, acknowledgements and round-trip estimates.

The host numbers each update and remembers when it sent it and how big it was; the viewer
acknowledges each update after painting it (acknowledgements are cumulative: ``Ack(seq)``
covers every update up to ``seq``). The host keeps at most :attr:`InFlight.window` updates
unacknowledged, so updates never pile up in a queue — a slow viewer simply gets fewer of them.

Time is always passed in (seconds, any monotonic origin); nothing here reads a clock.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError

__all__ = ["InFlight", "Sample"]


@dataclasses.dataclass(frozen=True)
class Sample:
    """What one acknowledgement taught: the update's round trip and size."""

    seq: int
    rtt: float
    nbytes: int
    #: Bytes still unacknowledged when this update was sent (the queue it joined).
    queued_before: int
    #: Seconds the viewer says it held the acknowledged update before acking (decode and
    #: paint; 0 when it did not say), as reported: the estimator bounds it by the round trip.
    #: For an earlier update the same cumulative ack covers, it is a lower bound of that
    #: update's own hold (received earlier, acknowledged at the same time).
    hold: float = 0.0


class InFlight:
    """Updates sent but not yet acknowledged, and the round-trip estimates their acks give."""

    def __init__(self, window: int = 2) -> None:
        if not 1 <= window <= limits.MAX_IN_FLIGHT:
            raise LocalProtocolError(f"window must be 1..{limits.MAX_IN_FLIGHT}")
        #: Most updates allowed unacknowledged at once.
        self.window = window
        #: seq -> (sent at, bytes on the wire, bytes unacknowledged before it).
        self._sent: collections.OrderedDict[int, tuple[float, int, int]] = (
            collections.OrderedDict()
        )
        #: seq -> bytes of video key units in that update (only updates holding some).
        self._keys: dict[int, int] = {}
        self._last_sent = -1
        self._last_acked = -1
        #: Smoothed round-trip time (RFC 6298 style EWMA), ``None`` before the first sample.
        self.srtt: float | None = None
        #: Smallest round trip seen: the link's base delay plus the viewer's paint time.
        self.min_rtt: float | None = None
        #: Total bytes of updates acknowledged.
        self.acked_bytes = 0
        #: Most bytes unacknowledged at once (``None``: no byte limit). One update may
        #: always be in flight, however large, so a big update is never stuck.
        self.window_bytes: int | None = None
        #: Called as ``listener(now, sample)`` for every acknowledged update (the bandwidth
        #: controller's input).
        self.listener: Callable[[float, Sample], None] | None = None

    @property
    def count(self) -> int:
        """Updates unacknowledged."""
        return len(self._sent)

    @property
    def bytes(self) -> int:
        """Bytes of updates unacknowledged."""
        return sum(nbytes for _, nbytes, _ in self._sent.values())

    def can_send(self) -> bool:
        """True when one more update fits in the window (count, and bytes if limited).

        A video key unit that fits in the byte window counts at most half of it: it is a
        burst its encoder budgeted for (the units after it stay small until the encoder's
        buffer refills), so the stream's next frames go behind it rather than wait for its
        acknowledgement. At 10 Mbit/s a 97 kB key unit behind a start picture still in flight
        held the next grab for 40-50 ms, and a frame of the pan was never sent. A key unit
        larger than the window counts whole: on a slow link the frames behind it would queue
        for longer than the window allows."""
        if not self._sent:
            return True
        if len(self._sent) >= self.window:
            return False
        limit = self.window_bytes
        if limit is None:
            return True
        # The excess of each key unit over half the window, where the unit fits in it.
        spared = sum(key - limit // 2 for key in self._keys.values() if limit // 2 < key <= limit)
        return self.bytes - spared < limit

    def on_sent(self, seq: int, now: float, nbytes: int, key_bytes: int = 0) -> None:
        """Record that update ``seq`` (``nbytes`` on the wire, ``key_bytes`` of them video key
        units) left at ``now``."""
        if seq <= self._last_sent:
            raise LocalProtocolError("update sequence numbers must increase")
        if len(self._sent) >= self.window:
            raise LocalProtocolError("the in-flight window is full")
        if not 0 <= key_bytes <= nbytes:
            raise LocalProtocolError("key unit bytes must be within the update's")
        self._sent[seq] = (now, nbytes, self.bytes)
        if key_bytes:
            self._keys[seq] = key_bytes
        self._last_sent = seq

    def on_ack(self, seq: int, now: float, hold: float = 0.0) -> list[Sample]:
        """Record a cumulative acknowledgement; return a sample per update it covers.

        ``hold``: the seconds the viewer held update ``seq`` before acking it (``ack.hold_us``),
        given to every sample, the round trip itself left whole (the window counts it all).

        Raises :class:`RemoteProtocolError` for an ack of an update never sent or already
        acknowledged: a well-behaved viewer acknowledges each update once, in order.
        """
        if seq > self._last_sent or seq <= self._last_acked:
            raise RemoteProtocolError(f"ack {seq} does not match an update in flight")
        self._last_acked = seq
        samples = []
        while self._sent:
            first = next(iter(self._sent))
            if first > seq:
                break
            sent_at, nbytes, queued = self._sent.pop(first)
            self._keys.pop(first, None)
            rtt = max(0.0, now - sent_at)
            samples.append(Sample(first, rtt, nbytes, queued, max(0.0, hold)))
            self.acked_bytes += nbytes
            self._observe(rtt)
            if self.listener is not None:
                self.listener(now, samples[-1])
        return samples

    def _observe(self, rtt: float) -> None:
        self.min_rtt = rtt if self.min_rtt is None else min(self.min_rtt, rtt)
        self.srtt = rtt if self.srtt is None else 0.875 * self.srtt + 0.125 * rtt

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest unacknowledged update has waited (0 when none)."""
        if not self._sent:
            return 0.0
        sent_at = next(iter(self._sent.values()))[0]
        return max(0.0, now - sent_at)

    def check_stalled(self, now: float, timeout: float) -> None:
        """Raise :class:`RemoteProtocolError` if an update has waited over ``timeout``."""
        if self.oldest_age(now) > timeout:
            raise RemoteProtocolError(
                f"viewer acknowledged nothing for {timeout:g} s", CloseCode.UNRESPONSIVE
            )
