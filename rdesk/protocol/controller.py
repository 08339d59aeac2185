"""Per-viewer bandwidth controller: window, JPEG quality, downscale and frame rate.

Delay-based, in the spirit of TCP Vegas and TigerVNC's congestion control: TCP hides loss, so
the signal is the *queueing delay* the :class:`~rdesk.protocol.estimator.Estimator` measures
(current RTT minus base RTT). One number, the **level** (0..1), says how rich the picture may
be; quality, scale and frame rate are all read from it:

=========== ======= ======================= ==================
level       scale   JPEG quality            frame-rate cap
=========== ======= ======================= ==================
0.5 .. 1    1       min .. max              max
0.2 .. 0.5  1/2     min .. max              max
0 .. 0.2    1/4     min .. max              max / 12 .. max
=========== ======= ======================= ==================

Each byte-size step (full scale at low quality vs half scale at high quality) is roughly
continuous, so the level is a rough logarithm of the bytes per frame. Until the link has carried
anything large (:attr:`~rdesk.protocol.estimator.Estimator.carried`), the picture is drawn at
most at :data:`UNMEASURED_LEVEL` (:attr:`Controller.picture_level`): with no evidence of the
link's rate, the first full-screen change at full quality was 374 kB of JPEG at 1080p, 1.5 s
of nothing else over 2 Mbit/s; at half scale and the lowest quality it is a tenth of that, and
its acknowledgement measures the link. While the host says a large change may be becoming
video (:attr:`Controller.starting`), the picture is held at :data:`STARTING_LEVEL` too: the
stream replaces those rounds a few frames later, and a full-quality JPEG among them held the
pan's first second to a few updates. The stream itself reads the level unheld
(:attr:`Controller.stream_level`).

- queueing delay above :attr:`Controller.high` → the level is multiplied by
  :data:`DECREASE`, or by ``high / delay`` (not below 0.35) when the queue is far above the
  threshold — at most once per round trip, so one queue is not punished twice;
- below :attr:`Controller.low` while updates flow → the level climbs additively, from 0 to 1
  in :data:`RAMP` seconds, so full quality is back within ~2 s once bandwidth returns;
- in between, it holds.

The in-flight window is bytes-based: about two bandwidth-delay products of what the viewer
actually received, or one of the link rate measured from large updates if that is more (after
a still screen the viewer received next to nothing, and a pan's first small pictures went one
round trip each), never below :data:`MIN_WINDOW_BYTES`, and :data:`UNMEASURED_WINDOW_BYTES`
until the link rate is measured (a pan's second picture need not wait for the first one's
ack); the link rate is left out while a queue seen since a large update last confirmed it
says the link may carry less now (:data:`LINK_AGREES`); one update may always be in flight.
Its count of updates (:meth:`Controller.window_updates`) is what keeps the frame rate over
the round trip: a round trip's worth of rounds at the rate allowed, plus one, within the host's
``window`` setting and :data:`MAX_WINDOW_UPDATES` (3 updates over an 80 ms link whose round
trip is 130 ms with paint held the rounds to 23 a second, whatever their size).
Caps from the host (``--quality``, ``--max-fps``, ``--max-bandwidth``) and the viewer
(:class:`~rdesk.protocol.messages.Prefs`) bound everything; a bandwidth cap is enforced by
pacing (:meth:`Controller.next_send_at`), and time spent waiting for it counts as queueing.

Sans-I/O: time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

import dataclasses

from rdesk.protocol.estimator import RATE_SAMPLE_BYTES, Estimator

__all__ = [
    "DECREASE",
    "LATENCY_LIMIT",
    "LINK_AGREES",
    "MIN_QUALITY",
    "MAX_WINDOW_UPDATES",
    "MIN_WINDOW_BYTES",
    "UNMEASURED_WINDOW_BYTES",
    "RAMP",
    "STARTING_LEVEL",
    "UNMEASURED_LEVEL",
    "Caps",
    "Controller",
]

#: Lowest JPEG quality the controller chooses.
MIN_QUALITY = 30
#: Multiplicative decrease of the level on congestion.
DECREASE = 0.7
#: Seconds for the level to climb from 0 to 1 on a clear link.
RAMP = 1.6
#: A round trip above this (seconds) is congestion whatever the base: on a link so slow that
#: even the first updates queue, the base RTT itself is inflated.
LATENCY_LIMIT = 1.0
#: Smallest byte window (one small update must always fit).
MIN_WINDOW_BYTES = 16 * 1024
#: Byte window before the link rate is measured (no update of :data:`RATE_SAMPLE_BYTES` acked
#: yet): one start-cap picture (35 kB, a 1080p photo at :data:`UNMEASURED_LEVEL`) and one more
#: may be in flight, so a pan's second picture does not wait for the first one's ack (a round
#: trip on 10 Mbit/s / 30 ms, one frame of the 30 fps source not sent). Two such pictures are
#: what the measured window holds on 2 Mbit/s / 80 ms anyway (the link's 250 kB/s × 0.25 s).
UNMEASURED_WINDOW_BYTES = 48 * 1024
#: A queue above :attr:`Controller.high` puts the measured link rate in doubt for the byte
#: window until a large update reads at least this share of it (:meth:`Controller.on_ack`).
LINK_AGREES = 0.5
#: Most updates the count window grows to (the byte window bounds what they hold).
MAX_WINDOW_UPDATES = 12
#: Smallest lossless-refresh budget per round, in bytes.
MIN_REFRESH_BYTES = 16 * 1024
#: Most the picture's level may be before the link carried anything large (half scale, lowest
#: quality: the first large lossy round is small wherever the link turns out to be).
UNMEASURED_LEVEL = 0.2
#: Most the picture's level may be while a large change is becoming video
#: (:attr:`Controller.starting`): the start cap again, about 35 kB a 1080p photo (the stream
#: that starts reads the level unheld, :attr:`Controller.stream_level`). At 0.35 (half scale,
#: quality 55) or 0.5 (full scale, quality 30) the pan's first second was no better than with
#: no such cap, under load (10 Mbit/s, 2 December 2026).
STARTING_LEVEL = UNMEASURED_LEVEL
#: Lowest level that still counts as "full picture" for the frame-rate cap.
_FPS_KNEE = 0.2
_SCALE_STEPS = ((0.5, 1.0), (0.2, 0.5), (0.0, 0.25))


@dataclasses.dataclass(frozen=True)
class Caps:
    """Upper bounds on what the controller may choose.

    ``max_bandwidth`` is in bits per second, ``None`` for no cap.
    """

    max_quality: int = 80
    max_fps: float = 60.0
    max_bandwidth: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_quality <= 100:
            raise ValueError("max_quality must be 1..100")
        if self.max_fps <= 0:
            raise ValueError("max_fps must be positive")
        if self.max_bandwidth is not None and self.max_bandwidth <= 0:
            raise ValueError("max_bandwidth must be positive or None")


class Controller:
    """Chooses one viewer's window, quality, scale and frame rate from its link estimates.

    Feed it every acknowledgement (:meth:`on_ack`), the start of every update round
    (:meth:`on_round`) and every update sent (:meth:`on_sent`);
    read :attr:`quality`, :attr:`scale`, :attr:`fps`, :meth:`window_bytes`,
    :meth:`next_send_at` and :meth:`refresh_budget`.
    """

    def __init__(self, caps: Caps | None = None, *, now: float = 0.0, level: float = 1.0) -> None:
        self.caps = caps or Caps()
        self.estimator = Estimator()
        #: 0 (smallest picture) .. 1 (full quality, full scale, full rate).
        self.level = min(1.0, max(0.0, level))
        self._last_update = now
        self._last_decrease = -1e9
        #: Earliest start of the next round under the frame-rate cap.
        self._round_due: float | None = None
        self._bw_free_at = now
        #: EWMA of updates' transmit time at the bandwidth cap (seconds).
        self.pace_delay = 0.0
        #: How many times the level was cut, for tests and statistics.
        self.decreases = 0
        #: Set by the host while a large change may be becoming video: the picture is held at
        #: :data:`STARTING_LEVEL` until its stream starts (:attr:`picture_level`).
        self.starting = False
        #: Whether a queue was seen since a large update last confirmed the link rate: the
        #: byte window then leaves the link rate out (:meth:`window_bytes`).
        self.link_doubted = False

    # --- inputs --------------------------------------------------------------------------------

    def set_caps(self, caps: Caps) -> None:
        """Replace the caps (host settings combined with the viewer's preferences)."""
        self.caps = caps

    def on_ack(self, now: float, rtt: float, nbytes: int, hold: float = 0.0,
               queued: int = 0) -> None:
        """One update of ``nbytes`` was acknowledged after ``rtt`` seconds, of which the
        viewer says it held it ``hold`` (decode and paint; 0: not said), sent behind ``queued``
        bytes unacknowledged."""
        est = self.estimator
        est.on_sample(now, rtt, nbytes, hold, queued)
        # The link rate is the median of the last large updates, and only large updates move
        # it: once the link is cut and the pictures shrink below RATE_SAMPLE_BYTES, it kept
        # reading the old link for ever, and the byte window held 2.4 s of the new one (50 ->
        # 1 Mbit/s, tests/e2e/test_adaptation.py). A queue doubts it; a large update that
        # reads about as much (the median has followed a real change) confirms it again, even
        # if its own transmit shows as queue (a 100 kB picture is 0.3 s of 2.5 Mbit/s).
        if est.queue_delay > self.high:
            self.link_doubted = True
        if nbytes >= RATE_SAMPLE_BYTES and self.link_doubted:
            newest, link = est.newest_large_rate, est.link_rate
            if newest is not None and link is not None and newest >= LINK_AGREES * link:
                self.link_doubted = False
        self.update(now)

    def on_round(self, now: float, fps: float | None = None) -> None:
        """An update round starts now (its pixels are taken): the frame-rate cap counts from here.

        ``fps`` is the least rate the next slot allows, above :attr:`fps` when that is lower: a
        video round's bytes are set by its stream's bitrate, not by the level, so at a low level
        it is paced at the stream's frame rate; above it, at the level's cap as any round (a cap
        of exactly the source's 30 a second would merge two jittered frames into one round).

        Counting from the start, not from when the update left, keeps encode time out of the
        frame interval: at a 60 fps cap, rounds start every 1/60 s however long each takes to
        encode, as long as one round fits in that time. The slots are kept on a schedule, so a
        round that starts a little late (timer granularity) does not push every later one back;
        at most half an interval is made up, so rounds never go out in a burst. A round that
        starts before its slot (one exempt from the cap: a keystroke, a scroll) takes the slot
        from now, never a later one: 30 scroll rounds a second at a 5 fps cap pushed the next
        slot 7 s into the future, and the first paced round after them waited that long.
        """
        interval = 1.0 / min(self.caps.max_fps, max(fps or 0.0, self.fps))
        due = self._round_due if self._round_due is not None else now
        self._round_due = min(max(due, now - interval / 2), now) + interval

    def on_sent(self, now: float, nbytes: int) -> None:
        """An update of ``nbytes`` left now: count it against the bandwidth cap."""
        bw = self.caps.max_bandwidth
        if bw is not None:
            # The cap acts like a bottleneck of that rate: an update's transmit time at the
            # cap is the delay it adds, as the link's own serialisation would.
            transmit = nbytes * 8 / bw
            self.pace_delay += 0.25 * (transmit - self.pace_delay)
            self._bw_free_at = max(self._bw_free_at, now) + transmit
        else:
            self.pace_delay = 0.0

    # --- the control law -----------------------------------------------------------------------

    @property
    def delay(self) -> float:
        """The congestion signal: queueing delay on the link plus waiting for the bandwidth cap."""
        return self.estimator.queue_delay + self.pace_delay

    @property
    def high(self) -> float:
        """Queueing delay (s) above which the level is cut."""
        base = self.estimator.base_rtt or 0.0
        return 0.05 + 0.25 * base

    @property
    def low(self) -> float:
        """Queueing delay (s) below which the level climbs."""
        return 0.5 * self.high

    def update(self, now: float) -> None:
        """Apply the control law for the time elapsed since the last call."""
        dt = max(0.0, min(now - self._last_update, 0.5))
        self._last_update = now
        est = self.estimator
        if est.round_trip is None:
            return
        delay = self.delay
        # The whole round trip, the viewer's hold included: a viewer that takes a second to
        # paint is helped by smaller pictures too, and the samples after a cut come a whole
        # round trip later.
        trip = est.round_trip
        if delay > self.high or trip > LATENCY_LIMIT:
            # Once per round trip: the samples after a cut still carry the old queue.
            if now - self._last_decrease >= max(trip, 0.05):
                # A queue far above the threshold is cut harder (it took many RTTs to build).
                ratio = min(self.high / max(delay, 1e-9), LATENCY_LIMIT / trip)
                self.level *= max(0.35, min(DECREASE, ratio))
                self._last_decrease = now
                self.decreases += 1
        elif delay < self.low:
            flowing = est.last_sample_at is not None and now - est.last_sample_at < 1.0
            if flowing:
                self.level = min(1.0, self.level + dt / RAMP)

    # --- outputs -------------------------------------------------------------------------------

    @property
    def picture_level(self) -> float:
        """The level the picture's tiles are drawn at: :attr:`level`, but at most
        :data:`UNMEASURED_LEVEL` until the link has carried anything large, and at most
        :data:`STARTING_LEVEL` while :attr:`starting`."""
        level = self.level if self.estimator.carried else min(self.level, UNMEASURED_LEVEL)
        return min(level, STARTING_LEVEL) if self.starting else level

    @property
    def stream_level(self) -> float:
        """The level a starting (or restarting) video stream reads its bitrate from:
        :attr:`level`, at most :data:`UNMEASURED_LEVEL` until the link has carried anything
        large, but not held by :attr:`starting`. The stream replaces the held pictures; started
        at the held level (a third of a 10 Mbit/s link) it restarted upward 3 s later, with a
        key unit at the full rate (0.19 s of that link, six frames not sent behind it). With
        the encoder's buffer capped (rdesk/host/video/encoder.py) a key unit at the full rate
        is about as small as the held one was (100 kB against 64 kB at 1080p)."""
        return self.level if self.estimator.carried else min(self.level, UNMEASURED_LEVEL)

    def _step(self) -> tuple[float, float]:
        """(scale, position 0..1 within the scale's level range)."""
        top = 1.0
        level = self.picture_level
        for floor, scale in _SCALE_STEPS:
            if level >= floor or floor == 0.0:
                return scale, (level - floor) / (top - floor)
            top = floor
        raise AssertionError("unreachable")

    @property
    def scale(self) -> float:
        """Downscale factor for lossy rectangles: 1, 1/2 or 1/4."""
        return self._step()[0]

    @property
    def quality(self) -> int:
        """JPEG quality for lossy rectangles, :data:`MIN_QUALITY` .. ``caps.max_quality``."""
        top = self.caps.max_quality
        bottom = min(MIN_QUALITY, top)
        return round(bottom + (top - bottom) * min(1.0, self._step()[1]))

    @property
    def fps(self) -> float:
        """Highest update rate now allowed (updates per second)."""
        fraction = min(1.0, max(1 / 12, self.level / _FPS_KNEE))
        return self.caps.max_fps * fraction

    def window_bytes(self, now: float) -> int:
        """Bytes that may be unacknowledged at once (one update may always be in flight)."""
        est = self.estimator
        # The base round trip with the viewer's hold put back: bytes it holds while painting
        # are in flight too (the base RTT itself is net of the hold).
        base = (est.base_rtt or 0.0) + est.hold
        trip = base + self.high
        # What the link carries in that time, measured from large updates: the throughput
        # alone reads next to nothing after a still screen, and held a pan's first pictures
        # (35 kB at the start cap) to one a round trip on 10 Mbit/s, 10 a second, while the
        # link carried three (and the grabs deferred behind them slowed the streak that
        # makes the pan video). One bandwidth-delay product of the link queues nothing.
        # Unmeasured, two start-cap pictures (UNMEASURED_WINDOW_BYTES): the first one's ack
        # measures the link, the second need not wait for it.
        # A queue since the link rate was last confirmed: the link may carry less now; only
        # what the viewer received counts until a large update confirms it (on_ack).
        if est.link_rate is None:
            link = float(UNMEASURED_WINDOW_BYTES)
        else:
            link = 0.0 if self.link_doubted else est.link_rate * trip
        return max(MIN_WINDOW_BYTES, int(2 * est.throughput(now) * trip), int(link))

    def window_updates(self, fps: float, least: int) -> int:
        """Updates that may be unacknowledged at once, to keep ``fps`` rounds a second going:
        a round trip's worth (base RTT plus the queueing delay tolerated) plus one, at least
        ``least`` (the host's setting) and at most :data:`MAX_WINDOW_UPDATES`."""
        est = self.estimator
        if est.min_rtt is None:
            return least
        needed = int(fps * (est.min_rtt + self.high)) + 2
        return max(least, min(MAX_WINDOW_UPDATES, needed))

    def next_send_at(self, now: float, *, frame_rate: bool = True) -> float:
        """Earliest time the next update may leave (frame-rate and bandwidth caps).

        ``frame_rate=False`` leaves out the frame-rate cap (for a small, still change such as
        a keystroke, which should not wait for the next motion frame slot).
        """
        at = now
        if frame_rate and self._round_due is not None:
            at = max(at, self._round_due)
        if self.caps.max_bandwidth is not None:
            at = max(at, self._bw_free_at)
        return at

    def carry_rate(self, now: float) -> float:
        """What the link carries at best (bytes/s): the windowed peak throughput, but never
        above the link rate measured from large updates — one large update acknowledged at
        once puts all its bytes in one second of the window and overstates a slow link."""
        est = self.estimator
        rate = est.peak_throughput(now)
        return rate if est.link_rate is None else min(rate, est.link_rate)

    def refresh_budget(self, now: float) -> int:
        """Bytes of lossless refresh worth sending in one round without building a queue."""
        rate = self.carry_rate(now) * 0.25
        if self.delay > self.high:  # congested: a tenth of a second of what gets through now
            rate = min(rate, self.estimator.throughput(now) * 0.1)
        if self.caps.max_bandwidth is not None:
            rate = min(rate, self.caps.max_bandwidth / 8 * 0.25)
        return max(MIN_REFRESH_BYTES, int(rate))

    def snapshot(self, now: float) -> dict[str, float | int | None]:
        """Everything a stats overlay or a log line may want."""
        figures: dict[str, float | int | None] = dict(self.estimator.snapshot(now))
        figures.update(
            level=self.level,
            quality=self.quality,
            scale=self.scale,
            fps=self.fps,
            window_bytes=self.window_bytes(now),
            delay=self.delay,
        )
        return figures
