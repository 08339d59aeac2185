"""Growing delays for failed logins, per source address (docs/security.md).

Like OpenSSH's PerSourcePenalties: each failure from a source doubles the wait before that
source's next answer, up to a ceiling; penalties outlive the connection (reconnecting does not
reset them) and decay after a quiet period. :class:`GlobalThrottle` adds a limit across all
sources (distributed guessing) and the signal to rotate a one-time password under attack;
:class:`UnauthenticatedLimiter` caps connections that have not authenticated yet (slowloris).
Time is passed in, so every class is testable with a fake clock.
"""

from __future__ import annotations

import collections
import dataclasses

__all__ = ["AuthThrottle", "GlobalThrottle", "UnauthenticatedLimiter"]


@dataclasses.dataclass
class _Record:
    failures: int
    last: float


class AuthThrottle:
    """Per-source failure counts and the delay each source must wait before an answer.

    :param base: delay after the first failure, seconds.
    :param ceiling: longest delay, seconds.
    :param forget_after: seconds without a failure after which a source starts afresh.
    :param max_sources: sources remembered at once (oldest forgotten first), bounding memory.
    :param global_throttle: the limit across all sources fed by :meth:`failed` (default: a
        :class:`GlobalThrottle` with its defaults); see :meth:`locked` and :meth:`should_rotate`.
    """

    def __init__(
        self,
        base: float = 0.5,
        ceiling: float = 30.0,
        forget_after: float = 600.0,
        max_sources: int = 10_000,
        global_throttle: GlobalThrottle | None = None,
    ) -> None:
        self.base = base
        self.ceiling = ceiling
        self.forget_after = forget_after
        self.max_sources = max_sources
        self._records: dict[str, _Record] = {}
        self.global_throttle = global_throttle if global_throttle is not None else GlobalThrottle()

    def delay(self, source: str, now: float) -> float:
        """Seconds to wait before answering ``source``'s authentication attempt."""
        record = self._records.get(source)
        if record is None or now - record.last > self.forget_after:
            return 0.0
        return float(min(self.ceiling, self.base * 2 ** (record.failures - 1)))

    def failed(self, source: str, now: float) -> None:
        """Count a failure from ``source``."""
        record = self._records.pop(source, None)
        if record is None or now - record.last > self.forget_after:
            record = _Record(0, now)
        record.failures += 1
        record.last = now
        self._records[source] = record  # re-insert: dict order is least recently failed first
        while len(self._records) > self.max_sources:
            del self._records[next(iter(self._records))]
        self.global_throttle.failed(now)

    def locked(self, now: float) -> bool:
        """Whether too many failures across all sources lock every attempt out right now
        (refuse with ``POLICY`` before checking the secret)."""
        return self.global_throttle.locked(now)

    def should_rotate(self) -> bool:
        """True once after every N failures (any source): rotate the one-time password."""
        return self.global_throttle.should_rotate()

    def succeeded(self, source: str) -> None:
        """Forget ``source``'s failures."""
        self._records.pop(source, None)

    def failures(self, source: str) -> int:
        record = self._records.get(source)
        return record.failures if record else 0


class GlobalThrottle:
    """Failures across **all** sources: a brake on distributed guessing.

    A botnet spreading guesses over many addresses never trips the per-source delays of
    :class:`AuthThrottle`. This counts every failure in a sliding window; when more than
    ``limit`` fall within ``window`` seconds the host enters a lockout of ``lockout`` seconds
    during which every authentication attempt — from any source — is refused with
    ``POLICY`` before the secret is even checked. It also raises a *rotation signal* after
    ``rotate_after`` failures (consumed by :meth:`should_rotate`), so the host can replace a
    one-time password that is under attack.
    """

    def __init__(
        self,
        limit: int = 30,
        window: float = 60.0,
        lockout: float = 60.0,
        rotate_after: int = 10,
    ) -> None:
        self.limit = limit
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
