"""Growing delays for failed logins, per source address (DESIGN.md, "Security defaults").

Like OpenSSH's PerSourcePenalties: each failure from a source doubles the wait before that
source's next answer, up to a ceiling; penalties outlive the connection (reconnecting does not
reset them) and decay after a quiet period. Time is passed in.
"""

from __future__ import annotations

import dataclasses

__all__ = ["AuthThrottle"]


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
    """

    def __init__(
        self,
        base: float = 0.5,
        ceiling: float = 30.0,
        forget_after: float = 600.0,
        max_sources: int = 10_000,
    ) -> None:
        self.base = base
        self.ceiling = ceiling
        self.forget_after = forget_after
        self.max_sources = max_sources
        self._records: dict[str, _Record] = {}

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

    def succeeded(self, source: str) -> None:
        """Forget ``source``'s failures."""
        self._records.pop(source, None)

    def failures(self, source: str) -> int:
        record = self._records.get(source)
        return record.failures if record else 0
