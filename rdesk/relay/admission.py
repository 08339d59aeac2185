"""Who the relay lets in: per-source buckets, the per-ID bucket, the waiting and session caps.

One :class:`Admission` per relay instance. The per-source buckets (``/connect``, ``/data``,
``/host``), the per-ID bucket and the cap on viewers waiting for one ID are the directory's
(:meth:`~rdesk.relay.directory.Directory.take`, ``take_place``), so every instance sharing a
directory draws from the same ones and a flood spread over N instances gets one burst
through, not N. While a shared directory cannot answer, this instance's own buckets and
counts stand in (the relay keeps serving, at the same limits per instance), which it says
once in its log and audit log (``limits_local``), and once again when the directory answers
again (``limits_shared``). The cap on sessions in all (``max_sessions``) is this instance's:
it bounds this process's own memory and sockets. Each refusal raises the relay's one-line
refusal and reports a ``rate_limited`` event.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rdesk.protocol.errors import CloseCode
from rdesk.relay.config import RelayConfig
from rdesk.relay.directory import Directory, DirectoryUnavailable
from rdesk.relay.messages import RelayProtocolError as _Refusal
from rdesk.relay.ratelimit import RateLimiter

__all__ = ["Admission", "Place", "place_ttl"]

log = logging.getLogger(__name__)
Event = Callable[..., None]
T = TypeVar("T")

#: Seconds a waiting place outlives the viewer's rendezvous deadline: room for the directory
#: calls between taking the place and starting the deadline's wait (each bounded by the Redis
#: client's timeout, 5 s).
PLACE_SLACK = 6.0

#: Seconds the limits keep to this instance's own after the directory failed to answer.
RETRY = 1.0


def place_ttl(config: RelayConfig) -> float:
    """How long a waiting place is held at most: a viewer waits no longer than its rendezvous
    deadline, so a place that was never freed (its instance died) lapses soon after."""
    return config.rendezvous_timeout + PLACE_SLACK


@dataclasses.dataclass(frozen=True)
class Place:
    """A viewer's place among those waiting for ``host_id``: in the shared set, or counted
    locally (taken while the directory could not answer)."""

    host_id: str
    member: str
    shared: bool


class Admission:
    """The limits of one instance. ``clock`` is monotonic (local buckets), ``wall_clock``
    the directory's (shared buckets and places); ``event(kind, **fields)`` reports refusals."""

    def __init__(self, config: RelayConfig, directory: Directory, event: Event,
                 clock: Callable[[], float], wall_clock: Callable[[], float]) -> None:
        self.config, self.directory, self._event = config, directory, event
        self.clock, self.wall_clock = clock, wall_clock
        #: Per-source endpoints: the bucket's (rate, burst) and this instance's stand-in.
        self.sources: dict[str, tuple[tuple[float, int], RateLimiter]] = {
            endpoint: (rate, RateLimiter(*rate)) for endpoint, rate in (
                ("connect", config.connect_rate), ("registration", config.host_rate),
                ("data", config.connect_rate), ("splice", config.connect_rate))}
        self._id_fallback = RateLimiter(*config.id_rate)
        #: Viewers waiting for each ID's host whose places are this instance's own.
        self.waiting: Counter[str] = Counter()
        #: Viewers spliced or waiting, on this instance.
        self.sessions = 0
        #: Whether the last call to the directory's limits was answered.
        self.shared = True
        self._retry_at = 0.0

    async def _shared(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """The directory's answer to ``call()``, or ``None`` when it cannot answer (said once
        per outage). After a failure the directory is left alone for ``RETRY`` seconds, so a
        Redis that times out does not hold every viewer for its timeout."""
        if not self.shared and self.clock() < self._retry_at:
            return None
        try:
            answer = await call()
        except DirectoryUnavailable as exc:
            self._retry_at = self.clock() + RETRY
            if self.shared:
                self.shared = False
                log.warning("relay limits: %s; using this instance's own limits until it "
                            "answers again", exc)
                self._event("limits_local", reason=str(exc))
            return None
        if not self.shared:
            self.shared = True
            log.warning("relay limits: the directory answers again; limits are shared again")
            self._event("limits_shared")
        return answer

    async def limit(self, endpoint: str, source: str) -> None:
        """Refuse ``source`` over its bucket for ``endpoint`` (``connect``, ``registration``,
        ``data`` or ``splice``: the raw lane's port), shared through the directory."""
        (rate, burst), fallback = self.sources[endpoint]
        allowed = await self._shared(lambda: self.directory.take(
            f"source:{endpoint}:{source}", rate, burst, self.wall_clock()))
        if allowed is None:
            allowed = fallback.allow(source, self.clock())
        if not allowed:
            self._event("rate_limited", source=source, endpoint=endpoint)
            raise _Refusal(f"rate-limited: too many {endpoint} attempts", CloseCode.POLICY)

    async def admit(self, host_id: str) -> Place:
        """Refuse a viewer for ``host_id`` over the caps (sessions on this instance, viewers
        waiting for the ID on all); else take its places, given back by :meth:`leave` and
        :meth:`stop_waiting`."""
        if self.sessions >= self.config.max_sessions:
            raise _Refusal("relay is full", CloseCode.POLICY)
        self.sessions += 1  # before any await: concurrent viewers cannot overshoot
        try:
            cap = self.config.max_waiting_per_id
            member = f"{self.config.instance}:{secrets.token_hex(8)}"
            taken = await self._shared(lambda: self.directory.take_place(
                f"waiting:{host_id}", member, cap, self.wall_clock(), place_ttl(self.config)))
            place = Place(host_id, member, taken is not None)
            if taken is None:
                taken = self.waiting[host_id] < cap
                if taken:
                    self.waiting[host_id] += 1
            if not taken:
                raise _Refusal("too many viewers waiting for this ID", CloseCode.POLICY)
        except BaseException:  # refused or cancelled: the session's place is free again
            self.sessions -= 1
            raise
        return place

    async def stop_waiting(self, place: Place) -> None:
        """The viewer of ``place`` is spliced or gone: its waiting place is free. A shared
        place the directory cannot free now lapses by itself (:func:`place_ttl`)."""
        host_id = place.host_id
        if place.shared:
            await self._shared(lambda: self.directory.free_place(f"waiting:{host_id}",
                                                                 place.member))
        elif self.waiting.get(host_id, 0) > 0:
            self.waiting[host_id] -= 1
            if not self.waiting[host_id]:
                del self.waiting[host_id]

    def leave(self) -> None:
        """A viewer's session ended: its place among ``max_sessions`` is free."""
        self.sessions -= 1

    async def take_id_token(self, host_id: str, source: str) -> None:
        """Refuse a viewer over the per-ID bucket, shared through the directory."""
        rate, burst = self.config.id_rate
        allowed = await self._shared(
            lambda: self.directory.take(f"id:{host_id}", rate, burst, self.wall_clock()))
        if allowed is None:
            allowed = self._id_fallback.allow(host_id, self.clock())
        if not allowed:
            self._event("rate_limited", source=source, id=host_id, endpoint="connect to ID")
            raise _Refusal("rate-limited: too many viewers for this ID", CloseCode.POLICY)

    def sweep(self) -> None:
        """Forget refilled local buckets (bounded memory between bursts)."""
        now = self.clock()
        for _, limiter in self.sources.values():
            limiter.sweep(now)
        self._id_fallback.sweep(now)
