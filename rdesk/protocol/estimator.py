"""Per-viewer link estimates from update acknowledgements (docs/adaptation.md).

Every acknowledged update gives one :class:`~rdesk.protocol.flow.Sample`: its round trip (send
to ack, so it includes the time to push the update's bytes through the bottleneck and the
viewer's paint time) and its size. From these the :class:`Estimator` keeps:

- **base RTT** — the smallest round trip within a sliding window (:attr:`base_window`
  seconds), i.e. the link's propagation delay plus paint time, re-learnt when the path changes.
  A sample's round trip includes pushing that update's own bytes through the bottleneck, so
  when every update is large (full-screen motion from the first frame) the raw minimum
  overstates the base; each sample is therefore also corrected by ``nbytes / peak
  throughput`` (the peak counting the sample's own bytes, so no sample is corrected by more
  than the rate window, and only once the peak holds :data:`RATE_SAMPLE_BYTES`: the first
  large update after a few small ones, corrected by their few hundred bytes a second, read as
  a round trip of 0 and held the base at its floor for the 10 s of the base window), and the
  base is the corrected minimum, but never below :data:`BASE_FLOOR` × the raw minimum (the
  correction overshoots on an idle link, where the throughput seen understates the link's
  rate);
- **current RTT** — a fast EWMA of recent samples;
- **delivered throughput** — bytes acknowledged per second over a sliding window;
- **queueing delay** — current minus base: how much longer than necessary updates take. TCP
  hides loss, so this rising delay is the congestion signal (Vegas, TigerVNC);
- **link rate** — bytes per second of the time large updates spent beyond the smallest
  earlier round trip (``nbytes / (rtt - min rtt)``, that minimum re-read as later, quicker
  updates lower it), the median of the last five. Unlike the windowed throughput
  it needs no steady stream: one large update that took seconds on a slow link tells it.

Sans-I/O: time is always passed in, nothing here reads a clock.
"""

from __future__ import annotations

import collections
import statistics

__all__ = ["BASE_FLOOR", "LARGE_SAMPLES", "RATE_SAMPLE_BYTES", "Estimator"]

#: The base RTT is never taken below this fraction of the raw windowed minimum.
BASE_FLOOR = 0.7
#: Smallest update that counts towards the link rate: smaller ones are dominated by the round
#: trip, so their transmit time is lost in its noise.
RATE_SAMPLE_BYTES = 16 * 1024
#: Large updates the link rate is read from (the latest; their median, so one or two outliers
#: — a large update whose round trip came within a millisecond of the minimum read as 54
#: Mbit/s on a 2 Mbit/s link — do not move it).
LARGE_SAMPLES = 5


class Estimator:
    """Round-trip, throughput and queueing-delay estimates for one viewer.

    :param base_window: seconds over which the base RTT is the minimum.
    :param rate_window: seconds over which delivered throughput is measured.
    :param gain: EWMA gain of the current RTT (higher reacts faster).
    """

    def __init__(
        self, *, base_window: float = 10.0, rate_window: float = 1.0, gain: float = 0.25
    ) -> None:
        self.base_window = base_window
        self.rate_window = rate_window
        self.gain = gain
        #: (time, rtt) with increasing rtt: the front is the windowed minimum.
        self._mins: collections.deque[tuple[float, float]] = collections.deque()
        #: The same for samples corrected by their own transmission time.
        self._cmins: collections.deque[tuple[float, float]] = collections.deque()
        #: (time, throughput) with decreasing throughput: the front is the windowed maximum.
        self._peaks: collections.deque[tuple[float, float]] = collections.deque()
        #: (ack time, bytes) of recent acknowledgements.
        self._acks: collections.deque[tuple[float, int]] = collections.deque()
        self._acked_in_window = 0
        #: Current RTT (seconds), ``None`` before the first sample.
        self.rtt: float | None = None
        #: Last raw RTT sample.
        self.last_rtt: float | None = None
        #: Number of samples seen.
        self.samples = 0
        #: Time of the last sample.
        self.last_sample_at: float | None = None
        #: Whether the link has carried anything large yet: an update of
        #: :data:`RATE_SAMPLE_BYTES`, or as many bytes acknowledged in one rate window.
        self.carried = False
        #: The last large updates: (bytes, round trip, smallest earlier round trip or 0).
        self._large: collections.deque[tuple[int, float, float]] = collections.deque(
            maxlen=LARGE_SAMPLES)

    def on_sample(self, now: float, rtt: float, nbytes: int) -> None:
        """Record one acknowledged update of ``nbytes`` whose round trip was ``rtt``."""
        rtt = max(0.0, rtt)
        self.samples += 1
        self.last_rtt = rtt
        self.last_sample_at = now
        self.rtt = rtt if self.rtt is None else self.rtt + self.gain * (rtt - self.rtt)
        if nbytes >= RATE_SAMPLE_BYTES:
            self._large.append((nbytes, rtt, self._mins[0][1] if self._mins else 0.0))
        self._acks.append((now, nbytes))
        self._acked_in_window += nbytes
        self._expire(now)
        rate = self._acked_in_window / self.rate_window
        while self._peaks and self._peaks[-1][1] <= rate:
            self._peaks.pop()
        self._peaks.append((now, rate))
        if self._acked_in_window >= RATE_SAMPLE_BYTES:
            self.carried = True
        # The peak now counts this sample's own bytes: a correction of at most the rate window.
        # A peak of a few small acks says nothing of the link (corrected by their 862 bytes a
        # second, a 375 kB picture read as a round trip of 0); the first sample is taken raw.
        peak = self._peaks[0][1]
        corrected = rtt
        if self.samples > 1 and peak * self.rate_window >= RATE_SAMPLE_BYTES:
            corrected = max(0.0, rtt - nbytes / peak)
        for mins, value in ((self._mins, rtt), (self._cmins, corrected)):
            while mins and mins[-1][1] >= value:
                mins.pop()
            mins.append((now, value))

    def _expire(self, now: float) -> None:
        # Keep at least one entry so the base never vanishes on a quiet link.
        for mins in (self._mins, self._cmins):
            while len(mins) > 1 and mins[0][0] < now - self.base_window:
                mins.popleft()
        while self._peaks and self._peaks[0][0] < now - self.base_window:
            self._peaks.popleft()
        while self._acks and self._acks[0][0] < now - self.rate_window:
            self._acked_in_window -= self._acks.popleft()[1]

    @property
    def base_rtt(self) -> float | None:
        """Smallest RTT within the base window (seconds), ``None`` before any sample."""
        if not self._mins:
            return None
        return max(self._cmins[0][1], BASE_FLOOR * self._mins[0][1])

    @property
    def link_rate(self) -> float | None:
        """Link rate (bytes/s): the median of what the last :data:`LARGE_SAMPLES` large
        updates read, ``None`` before one.

        The time a large update took beyond the smallest *earlier* round trip is (at most) its
        transmit time plus whatever was queued ahead of it: a rate that errs on the slow side.
        That smallest round trip is re-read now, as a quicker update since may have lowered it:
        the first picture, after two small updates slowed by the session's start (520 ms on an
        80 ms link), read 2.4 Mbit/s over a 2 Mbit/s link, and video started above the link.
        With no earlier sample (the first update is often the large initial picture) the whole
        round trip counts, which errs the same way.
        """
        if not self._large:
            return None
        least = self._mins[0][1] if self._mins else None
        rates = []
        for nbytes, rtt, floor in self._large:
            if floor and least is not None:
                floor = min(floor, least)
            rates.append(nbytes / max(rtt - (floor if floor < rtt else 0.0), 1e-3))
        return statistics.median(rates)

    @property
    def min_rtt(self) -> float | None:
        """Smallest raw RTT within the base window (seconds)."""
        return self._mins[0][1] if self._mins else None

    @property
    def queue_delay(self) -> float:
        """Current RTT minus base RTT (seconds); 0 before any sample."""
        base = self.base_rtt
        if self.rtt is None or base is None:
            return 0.0
        return max(0.0, self.rtt - base)

    def throughput(self, now: float) -> float:
        """Bytes acknowledged per second over the last :attr:`rate_window` seconds."""
        self._expire(now)
        return self._acked_in_window / self.rate_window

    def peak_throughput(self, now: float) -> float:
        """Highest :meth:`throughput` seen within the base window (bytes per second)."""
        self._expire(now)
        return self._peaks[0][1] if self._peaks else 0.0

    def snapshot(self, now: float) -> dict[str, float | None]:
        """The figures as a dict (for logs, tests and statistics)."""
        return {
            "base_rtt": self.base_rtt,
            "rtt": self.rtt,
            "queue_delay": self.queue_delay,
            "throughput": self.throughput(now),
        }
