"""How long a host waits before reconnecting to its relay (pure)."""

from __future__ import annotations

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, random: float, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0 for the first retry).

    Capped exponential backoff with jitter: the ceiling doubles per attempt up to ``cap``,
    and the delay is uniform in the upper half of it (``random`` in ``[0, 1)``), so hosts
    that lost the same relay at once do not all come back at the same instant, yet each waits
    at least half the ceiling.
    """
    ceiling = min(cap, base * 2.0 ** min(attempt, 32))
    return ceiling * (0.5 + 0.5 * random)
