"""Token buckets per key (source address, host ID), bounded in memory, taking ``now``.

Each key has a bucket of ``burst`` tokens refilled at ``rate`` per second; an attempt takes
one token or is refused. At most ``max_keys`` buckets are kept; the least recently used one is
forgotten first (a forgotten key starts with a full bucket: memory is bounded, not the
limit's precision). A key whose bucket has refilled carries no information: :meth:`sweep`
drops it, so idle sources cost nothing.
"""

from __future__ import annotations

import collections

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allow at most ``burst`` attempts at once and ``rate`` per second sustained, per key."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = (
            collections.OrderedDict()
        )

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + max(0.0, now - last) * self.rate)

    def allow(self, key: str, now: float) -> bool:
        """Take one token from ``key``'s bucket; whether there was one."""
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self._buckets.move_to_end(key)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return True

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0 if it may now)."""
        return max(0.0, (1.0 - self._tokens(key, now)) / self.rate)

    def sweep(self, now: float) -> None:
        """Forget the buckets that have refilled (they would allow a full burst anyway)."""
        full = [key for key in self._buckets if self._tokens(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
