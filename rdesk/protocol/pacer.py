"""The transfer pacer: how much of a file a sender may have unconfirmed, and in what chunks.

Credit (rdesk/protocol/transfer.py) bounds a transfer to one window; on a slow link a window
is far more queue than a key press may wait behind. :class:`Pacer` bounds it to what the link
carries in a round trip plus :data:`QUEUE_TARGET` of queue, and picks each chunk's size. It is
the sender's half of the flow control and is used by every sender (the CLI and library, the
host's downloads; ``rdesk/web/core/pacer.js`` is the page's copy). docs/transfer.md ("Below
input and screen updates") says why it is built so.

Pure: every call takes ``now``; no clock, no I/O.
"""

from __future__ import annotations

from collections import deque

from rdesk.protocol.chunks import MAX_CHUNK
from rdesk.protocol.transfer import CREDIT_BATCH

__all__ = ["BW_ROUNDS", "CHUNK_TIME", "MIN_CHUNK", "QUEUE_TARGET", "RATE_WINDOW", "Pacer"]

#: The smallest chunk a :class:`Pacer` picks (slow links), and its first ones, before it
#: measured the link: small, so the first round trip it measures has (almost) no queue in it.
MIN_CHUNK = 4 * 1024
#: Seconds of the link one chunk may take, at least: the pacer's chunks are this long on
#: the wire, or longer when the round trip needs them to be (see :meth:`Pacer.chunk_size`).
CHUNK_TIME = 0.002
#: Seconds over which one delivery-rate sample is taken, at least (or a round trip, if
#: longer): credits read in a burst would otherwise make a rate of bytes over microseconds.
RATE_WINDOW = 0.05
#: The rate the budget is made of is the largest sample of the last this many rate windows
#: (BBR's bottleneck-bandwidth filter): long enough to hold the link's rate through the
#: round trips a busy CPU stretches, short enough to follow a link that slows down.
BW_ROUNDS = 10
#: A budget is cut into this many chunks (at least): fewer than the window of 16, so credit
#: never holds a paced sender back, and enough that a chunk is a small part of the queue.
_CHUNKS_PER_BUDGET = 12
#: Seconds of queue a transfer may build ahead of input and screen updates: 6.25 ms, so that
#: with the chunks being serialised on top (a batch of two, and the one whose credit is held
#: back: 16 ms standing queue at 10 Mbit/s with half a frame here) a key press waits well
#: under a frame. A larger target fills a link whose round trips a busy CPU stretches better
#: (simulated, credits 0-15 ms late: 98 % at 1/120 s, 90 % here) at that price in queue.
QUEUE_TARGET = 1 / 160


class Pacer:
    """Keeps a sender's unconfirmed bytes to ``rate × (min_rtt + target)``: what the link
    carries in its shortest round trip, plus :data:`QUEUE_TARGET` seconds of queue at its
    bottleneck (plus the stored chunk whose credit the receiver holds back), so a transfer
    queues well under a frame ahead of the input and screen updates that share its link.

    The receiver's credit is the confirmation: it comes back once chunks are stored, every
    :data:`~rdesk.protocol.transfer.CREDIT_BATCH` chunks. From it come

    - ``min_rtt``: the smallest round trip seen (from the newest chunk a credit covers), the
      link's delay without queue;
    - ``rate``: the link's delivery rate, *the largest* of the samples of the last
      :data:`BW_ROUNDS` rate windows. Each sample is the bytes confirmed over a window of
      :data:`RATE_WINDOW` or a round trip, divided by the longer of the time they took to
      be confirmed and the time they took to be sent (so credits read in a burst cannot
      make a rate the sender never sent at). The largest, not an average: a round trip that
      a busy CPU stretched (the receiver late to store, the sender late to read its credit)
      lowers the samples taken over it though the link is as fast as ever; an average would
      take the lower rate, make a smaller budget of it, measure lower still, and let the
      transfer settle at a fraction of the link (it did: 64 % of a 10 Mbit/s link). The
      target's extra bytes are the probe: whenever the round trip is short again they are
      delivered faster than the rate, and the rate goes up to the link's.

    Until both are known the sender may have four first chunks in flight (a slow start: a
    burst of a whole window would queue ahead of input on a slow link). It never holds the
    sender below two chunks in flight, so credit always comes back. It also picks the chunk
    size (:meth:`chunk_size`): small on a slow link, where a chunk on the wire delays a key
    press behind it, large on a fast one, where each message costs the hosts' CPU.
    """

    def __init__(self, target: float = QUEUE_TARGET) -> None:
        self.target = target
        #: (send time, bytes) of each unconfirmed chunk, oldest first.
        self._sent: deque[tuple[float, int]] = deque()
        #: Bytes sent whose credit has not come back.
        self.inflight = 0
        self.min_rtt: float | None = None
        #: Bytes per second the link delivers (the bandwidth filter's largest sample).
        self.rate: float | None = None
        #: (time, bytes confirmed so far, send time of the newest chunk confirmed) at each
        #: credit of the last rate window.
        self._confirmed: deque[tuple[float, int, float]] = deque()
        self._total = 0
        #: The bandwidth filter: (time, sample), samples decreasing (a sliding maximum).
        self._samples: deque[tuple[float, float]] = deque()

    def on_sent(self, nbytes: int, now: float) -> None:
        self._sent.append((now, nbytes))
        self.inflight += nbytes

    def on_credit(self, chunks: int, now: float) -> None:
        if not self._sent:
            return  # the first grant: it confirms nothing
        confirmed, newest = 0, 0.0
        for _ in range(min(chunks, len(self._sent))):
            newest, nbytes = self._sent.popleft()
            confirmed += nbytes
        self.inflight -= confirmed
        rtt = max(0.0, now - newest)
        self.min_rtt = rtt if self.min_rtt is None else min(self.min_rtt, rtt)
        self._total += confirmed
        self._confirmed.append((now, self._total, newest))
        window = max(RATE_WINDOW, self.min_rtt)
        while len(self._confirmed) > 2 and self._confirmed[1][0] <= now - window:
            self._confirmed.popleft()
        since, before, sent_then = self._confirmed[0]
        if now - since < window / 2 or self._total <= before:
            return
        # The longer of the two: bytes cannot be delivered faster than they were sent, however
        # closely their credits came (ack compression), nor faster than they were confirmed.
        interval = max(now - since, newest - sent_then)
        self._sample((self._total - before) / interval, now, window)

    def _sample(self, sample: float, now: float, window: float) -> None:
        samples = self._samples
        while samples and samples[-1][1] <= sample:
            samples.pop()  # never the largest again: a larger, newer one is in
        samples.append((now, sample))
        while samples[0][0] < now - BW_ROUNDS * window:
            samples.popleft()
        self.rate = samples[0][1]

    def chunk_size(self) -> int:
        """The bytes to put in the next chunk (the last one of a file may be shorter).

        :data:`CHUNK_TIME` of the link at least, and a twelfth of what the round trip and the
        target hold (so that fewer chunks than the credit window cover them), within
        :data:`MIN_CHUNK` … ``MAX_CHUNK``.
        """
        if self.rate is None or self.min_rtt is None:
            return MIN_CHUNK
        want = max(self.rate * CHUNK_TIME,
                   self.rate * (self.min_rtt + self.target) / _CHUNKS_PER_BUDGET)
        return int(min(MAX_CHUNK, max(MIN_CHUNK, want)))

    @property
    def budget(self) -> float:
        """Bytes that may be unconfirmed now (four first chunks until the link is measured)."""
        if self.rate is None or self.min_rtt is None:
            return 4.0 * MIN_CHUNK
        # The receiver holds the credit of up to CREDIT_BATCH - 1 stored chunks back: bytes
        # no longer on the link, yet unconfirmed; without them a long link's budget would fall
        # short of its round trip (one chunk of every batch waits there for the next).
        chunk = self.chunk_size()
        return max(2.0 * chunk,
                   self.rate * (self.min_rtt + self.target) + (CREDIT_BATCH - 1) * chunk)

    def allows(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more may be sent now (credit permitting): while the budget is
        not used up, even if this chunk overshoots it. Holding a chunk back until it fits
        would keep a budget's worth of chunk sizes unused on average, below the round trip's
        bytes on a long link."""
        return self.inflight < self.budget
