"""Who the relay lets in: per-source buckets, the per-ID bucket, the waiting and session caps.

One :class:`Admission` per relay instance. Per-source buckets (``/connect``, ``/data``,
``/host``) are this instance's: the source is the address this instance sees. The per-ID
bucket is the directory's (:meth:`~rdesk.relay.directory.Directory.take`), so every instance
sharing a directory draws from the same one and a flood spread over N instances gets one
burst through, not N; while a shared directory cannot answer, this instance's own bucket
stands in. Each refusal raises the relay's one-line refusal and reports a ``rate_limited``
event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from rdesk.protocol.errors import CloseCode
from rdesk.relay.config import RelayConfig
from rdesk.relay.directory import Directory, DirectoryUnavailable
from rdesk.relay.messages import RelayProtocolError as _Refusal
from rdesk.relay.ratelimit import RateLimiter

__all__ = ["Admission"]

Event = Callable[..., None]


class Admission:
    """The limits of one instance. ``clock`` is monotonic (local buckets), ``wall_clock``
    the directory's (shared buckets); ``event(kind, **fields)`` reports refusals."""

    def __init__(self, config: RelayConfig, directory: Directory, event: Event,
                 clock: Callable[[], float], wall_clock: Callable[[], float]) -> None:
        self.config, self.directory, self._event = config, directory, event
        self.clock, self.wall_clock = clock, wall_clock
        self.connect = RateLimiter(*config.connect_rate)
        self.host = RateLimiter(*config.host_rate)
        self.data = RateLimiter(*config.connect_rate)
        self._id_fallback = RateLimiter(*config.id_rate)
        #: Viewers waiting for each ID's host, on this instance.
        self.waiting: Counter[str] = Counter()
        #: Viewers spliced or waiting, on this instance.
        self.sessions = 0

    def limit(self, limiter: RateLimiter, key: str, endpoint: str, source: str) -> None:
        """Refuse ``key`` (a source) over ``limiter``'s bucket for ``endpoint``."""
        if not limiter.allow(key, self.clock()):
            self._event("rate_limited", source=source, endpoint=endpoint)
            raise _Refusal(f"rate-limited: too many {endpoint} attempts", CloseCode.POLICY)

    def admit(self, host_id: str) -> None:
        """Refuse a viewer for ``host_id`` over this instance's caps (viewers waiting for the
        ID, sessions in all); else take its places, given back by :meth:`leave` and
        :meth:`stop_waiting`. No await between the check and the taking."""
        if self.waiting[host_id] >= self.config.max_waiting_per_id:
            raise _Refusal("too many viewers waiting for this ID", CloseCode.POLICY)
        if self.sessions >= self.config.max_sessions:
            raise _Refusal("relay is full", CloseCode.POLICY)
        self.sessions += 1
        self.waiting[host_id] += 1

    def stop_waiting(self, host_id: str) -> None:
        """The viewer for ``host_id`` is spliced or gone: its waiting place is free."""
        if self.waiting.get(host_id, 0) > 0:
            self.waiting[host_id] -= 1
            if not self.waiting[host_id]:
                del self.waiting[host_id]

    def leave(self) -> None:
        """A viewer's session ended: its place among ``max_sessions`` is free."""
        self.sessions -= 1

    async def take_id_token(self, host_id: str, source: str) -> None:
        """Refuse a viewer over the per-ID bucket, shared through the directory."""
        rate, burst = self.config.id_rate
        try:
            allowed = await self.directory.take(f"id:{host_id}", rate, burst, self.wall_clock())
        except DirectoryUnavailable:
            allowed = self._id_fallback.allow(host_id, self.clock())
        if not allowed:
            self._event("rate_limited", source=source, id=host_id, endpoint="connect to ID")
            raise _Refusal("rate-limited: too many viewers for this ID", CloseCode.POLICY)

    def sweep(self) -> None:
        """Forget refilled local buckets (bounded memory between bursts)."""
        now = self.clock()
        for limiter in (self.connect, self.host, self.data, self._id_fallback):
            limiter.sweep(now)
