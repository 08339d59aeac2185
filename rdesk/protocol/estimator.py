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
  updates lower it), the median of the last five; an update sent behind unacknowledged bytes
  is timed at most from the previous ack. Unlike the windowed throughput
  it needs no steady stream: one large update that took seconds on a slow link tells it.

**Hold time.** A viewer may say how long it held each update before acking it (``ack.hold_us``:
its decode and paint, docs/protocol.md §7). The base RTT, the current RTT (so the queueing
delay) and the link rate are then read from the round trip *net* of that hold, so a viewer's
paint is no longer taken for the link's time (on 10 Mbit/s the link read about 5 Mbit/s with
it). The hold is the viewer's word, so it is bounded: it never takes a sample's net round trip
below the base's floor (:data:`BASE_FLOOR` × the smallest whole round trip), and a large
update's link rate never reads more than :data:`HOLD_GAIN` times what its whole round trip
reads. The windowed minimum of the *whole* round trips (:attr:`Estimator.min_rtt`, the in-flight
window's) and :attr:`Estimator.round_trip` keep the viewer's time: an update occupies the
window until its ack, however long the viewer held it.

Sans-I/O: time is always passed in, nothing here reads a clock.
"""

from __future__ import annotations

import collections
import statistics

__all__ = ["BASE_FLOOR", "HOLD_GAIN", "LARGE_SAMPLES", "RATE_SAMPLE_BYTES", "Estimator"]

#: The base RTT is never taken below this fraction of the raw windowed minimum.
BASE_FLOOR = 0.7
#: Smallest update that counts towards the link rate: smaller ones are dominated by the round
#: trip, so their transmit time is lost in its noise.
RATE_SAMPLE_BYTES = 16 * 1024
#: Large updates the link rate is read from (the latest; their median, so one or two outliers
#: — a large update whose round trip came within a millisecond of the minimum read as 54
#: Mbit/s on a 2 Mbit/s link — do not move it).
LARGE_SAMPLES = 5
#: Most a viewer's hold time may raise a large update's link rate: this many times what the
#: update's whole round trip reads. A truthful hold raised it 1.3-2.3 fold on 10 Mbit/s (the
#: paint of a 1080p frame, 10-90 ms on 2 shared cores, beside its 25-150 ms on the wire); a
#: hold that claims the whole round trip (a lie, or a viewer that counts from the first byte)
#: would read any rate at all. At 3, one 35 kB update after a slow first ack read 20.9 Mbit/s
#: on a 10 Mbit/s link; a cap errs slow, as the whole round trip always did.
HOLD_GAIN = 2.0


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
        #: (time, rtt) with increasing rtt: the front is the windowed minimum (whole trips).
        self._mins: collections.deque[tuple[float, float]] = collections.deque()
        #: The same for the trips net of the viewer's hold ...
        self._nmins: collections.deque[tuple[float, float]] = collections.deque()
        #: ... and for those net trips corrected by their own transmission time.
        self._cmins: collections.deque[tuple[float, float]] = collections.deque()
        #: (time, throughput) with decreasing throughput: the front is the windowed maximum.
        self._peaks: collections.deque[tuple[float, float]] = collections.deque()
        #: (ack time, bytes) of recent acknowledgements.
        self._acks: collections.deque[tuple[float, int]] = collections.deque()
        self._acked_in_window = 0
        #: Current RTT net of the viewer's hold (seconds), ``None`` before the first sample.
        self.rtt: float | None = None
        #: Current whole round trip, the viewer's hold included (seconds).
        self.round_trip: float | None = None
        #: Current hold time, as bounded (seconds; 0 from a viewer that does not report it).
        self.hold = 0.0
        #: Last raw RTT sample, and the last net of the viewer's hold.
        self.last_rtt: float | None = None
        self._last_net: float | None = None
        #: Number of samples seen.
        self.samples = 0
        #: Time of the last sample.
        self.last_sample_at: float | None = None
        #: Whether the link has carried anything large yet: an update of
        #: :data:`RATE_SAMPLE_BYTES`, or as many bytes acknowledged in one rate window.
        self.carried = False
        #: The last large updates: (bytes, whole round trip, smallest earlier whole round trip
        #: or 0, net round trip, smallest earlier net round trip or 0, seconds since the
        #: previous ack if it was sent behind unacknowledged bytes or 0).
        self._large: collections.deque[tuple[int, float, float, float, float, float]] = (
            collections.deque(maxlen=LARGE_SAMPLES))

    def bounded_hold(self, rtt: float, hold: float) -> float:
        """``hold`` as this estimator takes it for a sample whose whole round trip is ``rtt``:
        within 0 and ``rtt`` minus the base's floor (:data:`BASE_FLOOR` × the smallest whole
        round trip, this one included), so no net round trip reads below that floor."""
        least = min(rtt, self._mins[0][1]) if self._mins else rtt
        return min(max(0.0, hold), max(0.0, rtt - BASE_FLOOR * least))

    def on_sample(self, now: float, rtt: float, nbytes: int, hold: float = 0.0,
                  queued: int = 0) -> None:
        """Record one acknowledged update of ``nbytes`` whose round trip was ``rtt``, of which
        the viewer says it held the update ``hold`` seconds (0: it did not say), sent behind
        ``queued`` bytes still unacknowledged (0: nothing ahead of it)."""
        rtt = max(0.0, rtt)
        # Sent behind unacknowledged bytes, its round trip holds their wait too; the time since
        # the previous ack bounds its own transmit (and paint) on a busy link (dispersion).
        spacing = (now - self.last_sample_at
                   if queued > 0 and self.last_sample_at is not None else 0.0)
        hold = self.bounded_hold(rtt, hold)
        net = rtt - hold
        self.samples += 1
        self.last_rtt = rtt
        self._last_net = net
        self.last_sample_at = now
        self.hold = hold if self.round_trip is None else self.hold + self.gain * (hold - self.hold)
        self.rtt = net if self.rtt is None else self.rtt + self.gain * (net - self.rtt)
        self.round_trip = (rtt if self.round_trip is None
                           else self.round_trip + self.gain * (rtt - self.round_trip))
        if nbytes >= RATE_SAMPLE_BYTES:
            self._large.append((nbytes, rtt, self._mins[0][1] if self._mins else 0.0,
                                net, self._nmins[0][1] if self._nmins else 0.0, spacing))
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
        corrected = net
        if self.samples > 1 and peak * self.rate_window >= RATE_SAMPLE_BYTES:
            corrected = max(0.0, net - nbytes / peak)
        for mins, value in ((self._mins, rtt), (self._nmins, net), (self._cmins, corrected)):
            while mins and mins[-1][1] >= value:
                mins.pop()
            mins.append((now, value))

    def _expire(self, now: float) -> None:
        # Keep at least one entry so the base never vanishes on a quiet link.
        for mins in (self._mins, self._nmins, self._cmins):
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

        Read from the round trips net of the viewer's hold (both the update's and the earlier
        minimum), but never above :data:`HOLD_GAIN` times what the whole round trips read.

        An update sent behind unacknowledged bytes waited for them too: its time is at most the
        time since the previous ack (the link busy with it meanwhile, a packet train's
        dispersion). Without that, a pan's second 35 kB picture, sent 70 ms after the first on
        10 Mbit/s, read the link at about 5 Mbit/s and the stream started at half its rate.
        """
        rates = self._large_rates()
        return statistics.median(rates) if rates else None

    @property
    def newest_large_rate(self) -> float | None:
        """What the newest large update alone reads of the link (bytes/s, read as
        :attr:`link_rate` reads each), ``None`` before one."""
        rates = self._large_rates()
        return rates[-1] if rates else None

    def _large_rates(self) -> list[float]:
        """The link rate each of the last large updates reads, oldest first."""
        least = self._mins[0][1] if self._mins else None
        net_least = self._nmins[0][1] if self._nmins else None
        rates = []
        for nbytes, rtt, floor, net, net_floor, spacing in self._large:
            whole = _beyond(rtt, floor, least)
            took = _beyond(net, net_floor, net_least)
            if spacing > 0:
                whole, took = min(whole, spacing), min(took, spacing)
            rates.append(nbytes / max(took, whole / HOLD_GAIN, 1e-3))
        return rates

    @property
    def min_rtt(self) -> float | None:
        """Smallest whole (raw) RTT within the base window (seconds), the viewer's hold
        included: what the in-flight window must cover."""
        return self._mins[0][1] if self._mins else None

    @property
    def queue_delay(self) -> float:
        """Current RTT minus base RTT (seconds); 0 before any sample.

        The current RTT here is the smoothed one or the last sample, whichever is less: a
        queue shows in every sample until it drains, but one slow sample (the session's first
        ack, 0.3-1.7 s while the viewer set up) held the smoothed figure above the threshold
        for a second of quick samples after it, and the level was cut as the motion began.
        """
        base = self.base_rtt
        if self.rtt is None or base is None or self._last_net is None:
            return 0.0
        return max(0.0, min(self.rtt, self._last_net) - base)

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
            "hold": self.hold,
            "link_rate": self.link_rate,
        }


def _beyond(rtt: float, floor: float, least: float | None) -> float:
    """The time a round trip ``rtt`` took beyond the smallest earlier one (``floor``, 0 when
    there was none), re-read as ``least`` when a later, quicker one lowered it."""
    if floor and least is not None:
        floor = min(floor, least)
    return rtt - (floor if floor < rtt else 0.0)
