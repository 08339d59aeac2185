"""Growing delays for failed logins, per source address and credential kind (docs/security.md).

Like OpenSSH's PerSourcePenalties: each failure from a source doubles the wait before that
source's next answer, up to a ceiling; penalties outlive the connection (reconnecting does not
reset them) and decay after a quiet period. They are kept per *credential kind* (password,
invite code, certificate), and only a success that leaves nothing higher to guess resets one:
a view-only user who logs in with the view password keeps the penalty of its wrong guesses,
which may have aimed at the control password. Attempts still in flight count as failures
when the next delay is computed, so eight parallel guesses do not all wait the same.

:class:`GlobalThrottle` adds a brake across all sources (distributed guessing) and the signal
to rotate a one-time password under attack; while it is on, a source that logged in before
and a trickle of sources that never failed still get through (:meth:`AuthThrottle.admit`), so
guessers cannot lock the owner out. :class:`UnauthenticatedLimiter` caps connections that have
not authenticated yet (slowloris). Time is passed in, so every class is testable with a fake
clock.
"""

from __future__ import annotations

import collections
import dataclasses

__all__ = ["AuthThrottle", "GlobalThrottle", "UnauthenticatedLimiter"]

#: Credential kinds whose penalties are kept apart.
KINDS = ("password", "invite", "certificate")


@dataclasses.dataclass
class _Record:
    failures: int
    last: float
    #: Attempts begun (:meth:`AuthThrottle.begin`) and not answered yet.
    pending: int = 0


class AuthThrottle:
    """Per-source, per-kind failure counts and the delay each attempt must wait.

    :param base: delay after the first failure, seconds.
    :param ceiling: longest delay, seconds.
    :param forget_after: seconds without a failure after which a source starts afresh.
    :param max_sources: sources remembered at once (oldest forgotten first), bounding memory.
    :param global_throttle: the limit across all sources fed by :meth:`failed` (default: a
        :class:`GlobalThrottle` with its defaults); see :meth:`admit` and :meth:`should_rotate`.
    :param remember_known: seconds a source that logged in stays *known* (passes the brake).
    :param known_slack: failures a known source may have and still pass the brake.
    """

    def __init__(
        self,
        base: float = 0.5,
        ceiling: float = 30.0,
        forget_after: float = 600.0,
        max_sources: int = 10_000,
        global_throttle: GlobalThrottle | None = None,
        remember_known: float = 7 * 24 * 3600.0,
        known_slack: int = 2,
    ) -> None:
        self.base = base
        self.ceiling = ceiling
        self.forget_after = forget_after
        self.max_sources = max_sources
        self.remember_known = remember_known
        self.known_slack = known_slack
        self._records: dict[tuple[str, str], _Record] = {}
        #: Sources that logged in, with when (oldest first), for the brake.
        self._known: dict[str, float] = {}
        self.global_throttle = global_throttle if global_throttle is not None else GlobalThrottle()

    def _live(self, source: str, kind: str, now: float) -> _Record | None:
        record = self._records.get((source, kind))
        if record is None:
            return None
        if record.pending == 0 and now - record.last > self.forget_after:
            del self._records[(source, kind)]
            return None
        return record

    def _delay_for(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.ceiling, self.base * 2 ** min(failures - 1, 64)))

    def delay(self, source: str, now: float, kind: str = "password") -> float:
        """Seconds to wait before answering ``source``'s next ``kind`` attempt (counting the
        attempts in flight as failures)."""
        record = self._live(source, kind, now)
        return 0.0 if record is None else self._delay_for(record.failures + record.pending)

    def begin(self, source: str, now: float, kind: str = "password") -> float:
        """Start an attempt: its delay (serve it *before* checking the secret). End it with
        exactly one :meth:`failed` or :meth:`succeeded`."""
        wait = self.delay(source, now, kind)
        record = self._live(source, kind, now) or _Record(0, now)
        record.pending += 1
        self._store(source, kind, record)
        return wait

    def _store(self, source: str, kind: str, record: _Record) -> None:
        self._records.pop((source, kind), None)
        self._records[(source, kind)] = record  # dict order: least recently touched first
        while len(self._records) > self.max_sources:
            del self._records[next(iter(self._records))]

    def failed(self, source: str, now: float, kind: str = "password") -> None:
        """Count a failure from ``source`` (ending one begun attempt, if any)."""
        record = self._live(source, kind, now)
        if record is None:
            record = _Record(0, now)
        record.pending = max(0, record.pending - 1)
        record.failures += 1
        record.last = now
        self._store(source, kind, record)
        self.global_throttle.failed(now)

    def succeeded(self, source: str, now: float, kind: str = "password", *,
                  reset: bool = True) -> None:
        """Count a success (ending one begun attempt, if any); the source is now *known*.

        ``reset`` forgets the source's ``kind`` failures: pass ``False`` when the credential
        granted less than another of the same kind could (the view password), since the
        failures may have aimed at that one."""
        record = self._live(source, kind, now)
        if record is not None:
            record.pending = max(0, record.pending - 1)
            if reset:
                record.failures = 0
            if record.failures == 0 and record.pending == 0:
                del self._records[(source, kind)]
        self._known.pop(source, None)
        self._known[source] = now
        while len(self._known) > self.max_sources:
            del self._known[next(iter(self._known))]

    def admit(self, source: str, now: float) -> bool:
        """Whether ``source`` may try now, or is refused with ``POLICY`` before any check.

        Always, unless the global brake is on; then only a source that logged in within
        :attr:`remember_known` with at most :attr:`known_slack` failures, or one with no
        failures at all taking the brake's trickle slot."""
        if not self.global_throttle.locked(now):
            return True
        failures = self.failures(source)
        known = self._known.get(source)
        if known is not None and now - known <= self.remember_known:
            return failures < self.known_slack
        return failures == 0 and self.global_throttle.take_trickle(now)

    def locked(self, now: float) -> bool:
        """Whether the global brake is on right now (see :meth:`admit` for who still passes)."""
        return self.global_throttle.locked(now)

    def should_rotate(self) -> bool:
        """True once after every N failures (any source): rotate the one-time password."""
        return self.global_throttle.should_rotate()

    def failures(self, source: str, kind: str | None = None) -> int:
        """``source``'s remembered failures of ``kind`` (of every kind when ``None``)."""
        kinds = KINDS if kind is None else (kind,)
        return sum(r.failures for k in kinds if (r := self._records.get((source, k))))


class GlobalThrottle:
    """Failures across **all** sources: a brake on distributed guessing.

    A botnet spreading guesses over many addresses never trips the per-source delays of
    :class:`AuthThrottle`. This counts every failure in a sliding window; when more than
    ``limit`` fall within ``window`` seconds the host enters a lockout of ``lockout`` seconds
    during which authentication attempts are refused with ``POLICY`` before the secret is
    even checked — all but those :meth:`AuthThrottle.admit` lets through (known sources, and
    a trickle of sources that never failed). It also raises a *rotation signal* after
    ``rotate_after`` failures (consumed by :meth:`should_rotate`), so the host can replace a
    one-time password that is under attack.
    """

    def __init__(
        self,
        limit: int = 30,
        window: float = 60.0,
        lockout: float = 60.0,
        rotate_after: int = 10,
        trickle: float | None = None,
    ) -> None:
        self.limit = limit
        #: Seconds between the clean sources let through while locked (default: the rate
        #: the limit allows, ``window / limit``), so the owner is never shut out for good.
        self.trickle = trickle if trickle is not None else window / max(1, limit)
        self._next_trickle = float("-inf")
        self.window = window
        self.lockout = lockout
        self.rotate_after = rotate_after
        self._times: collections.deque[float] = collections.deque()
        self._locked_until = float("-inf")
        self._since_rotation = 0
        self._rotate = False

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()

    def failed(self, now: float) -> None:
        """Count one failure (from any source)."""
        self._expire(now)
        self._times.append(now)
        if len(self._times) > self.limit:
            self._locked_until = now + self.lockout
            self._times.clear()  # the lockout itself is the penalty; start counting afresh
        self._since_rotation += 1
        if self.rotate_after > 0 and self._since_rotation >= self.rotate_after:
            self._rotate = True
            self._since_rotation = 0

    def locked(self, now: float) -> bool:
        """Whether attempts are refused outright right now."""
        return now < self._locked_until

    def take_trickle(self, now: float) -> bool:
        """Take the one slot a clean source gets per :attr:`trickle` seconds while locked."""
        if now < self._next_trickle:
            return False
        self._next_trickle = now + self.trickle
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until the lockout ends (0 when not locked)."""
        return max(0.0, self._locked_until - now)

    def should_rotate(self) -> bool:
        """True once after every ``rotate_after`` failures: rotate the one-time password."""
        rotate, self._rotate = self._rotate, False
        return rotate


class UnauthenticatedLimiter:
    """Caps connections that have not authenticated yet, per source and in total (slowloris).

    Call :meth:`try_acquire` when a connection opens (refuse it with ``POLICY`` on ``False``)
    and :meth:`release` exactly once when it authenticates or ends, whichever comes first.
    """

    def __init__(self, per_source: int = 8, total: int = 64) -> None:
        self.per_source = per_source
        self.total = total
        self._counts: dict[str, int] = {}
        self._total = 0

    def try_acquire(self, source: str) -> bool:
        count = self._counts.get(source, 0)
        if count >= self.per_source or self._total >= self.total:
            return False
        self._counts[source] = count + 1
        self._total += 1
        return True

    def release(self, source: str) -> None:
        count = self._counts.get(source, 0)
        if count <= 0:
            return  # tolerate a double release rather than going negative
        if count == 1:
            del self._counts[source]
        else:
            self._counts[source] = count - 1
        self._total -= 1

    def count(self, source: str | None = None) -> int:
        """Unauthenticated connections from ``source`` (all sources when ``None``)."""
        return self._total if source is None else self._counts.get(source, 0)
