"""Where each registered host ID can be reached: the relay's directory.

The directory maps a host ID to the control connection that registered it: which relay
instance holds it (``instance``) and which connection on that instance (``connection``, an
opaque string). Nothing in an entry is a live object, so a shared store (Redis) can hold the
same entries for many relay instances behind a load balancer; :class:`Directory` is the
interface both implementations follow, async because a shared one does I/O.

Rules every implementation keeps:

* An ID is bound to the key it was registered with: registering a **live** ID with another
  key raises :class:`DirectoryRefusal` (the relay checked the key hashes to the ID, so this
  only happens for a 65-bit collision, but the directory does not rely on that).
* Registering a live ID with the **same** key replaces the entry and returns the old one, so
  the caller can close the control connection it replaces (a host that reconnected before its
  old connection timed out).
* Entries expire ``ttl`` seconds after the last register or heartbeat; an expired entry is as
  good as absent. ``now`` is passed in: a shared directory needs all instances to pass the
  same clock (wall time), a local one any monotonic clock.
* :meth:`heartbeat` and :meth:`unregister` act only for the connection that holds the entry,
  so a replaced connection cannot renew or remove its successor's registration.

The directory also carries requests between instances: :meth:`forward` hands a short message
to the instance named, whose :meth:`requests` yields it (the relay forwards rendezvous this way
to the instance holding a host's control connection). Delivery is best effort: a request is
lost if that instance is gone, and the viewer waiting on it times out.

And it holds the limits every instance must share for them to be global: :meth:`take` takes
a token from a named bucket (the per-ID and per-source buckets), so a flood spread over N
instances gets one burst through, not N; :meth:`take_place` and :meth:`free_place` keep a
capped set of places that expire (the viewers waiting for one ID), so a cap holds across
instances and a place whose holder died without freeing it lapses by itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Protocol

from rdesk.relay.places import Places
from rdesk.relay.ratelimit import RateLimiter

__all__ = ["Directory", "DirectoryRefusal", "DirectoryUnavailable", "Entry", "MemoryDirectory"]


class DirectoryRefusal(Exception):
    """A registration the directory refuses; ``str()`` is one line for the host."""


class DirectoryUnavailable(Exception):
    """A shared directory could not answer (its store is down); ``str()`` is one line."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered host ID."""

    host_id: str
    spki: bytes
    instance: str
    connection: str
    expires: float


class Directory(Protocol):
    """The directory interface (see the module docstring for the rules).

    Any method but :meth:`ready` may raise :class:`DirectoryUnavailable`.
    """

    async def register(
        self, host_id: str, spki: bytes, instance: str, connection: str, now: float, ttl: float
    ) -> Entry | None:
        """Record the ID; returns the live entry it replaced, if any."""
        ...

    async def heartbeat(self, host_id: str, connection: str, now: float, ttl: float) -> bool:
        """Renew the entry; ``False`` if ``connection`` no longer holds a live one."""
        ...

    async def lookup(self, host_id: str, now: float) -> Entry | None:
        """The live entry for the ID, or ``None``."""
        ...

    async def unregister(self, host_id: str, connection: str) -> bool:
        """Remove the entry if ``connection`` holds it; whether it did."""
        ...

    async def ready(self) -> bool:
        """Whether the directory can answer now (``/readyz``)."""
        ...

    async def forward(self, instance: str, request: bytes) -> bool:
        """Hand ``request`` to ``instance``; whether some listener took it."""
        ...

    def requests(self, instance: str) -> AsyncIterator[bytes]:
        """The requests forwarded to ``instance``, for as long as the caller iterates."""
        ...

    async def take(self, bucket: str, rate: float, burst: int, now: float) -> bool:
        """Take one token from the shared bucket named ``bucket`` (``burst`` tokens, refilled
        at ``rate`` per second, ``now`` in the directory's clock); whether there was one."""
        ...

    async def take_place(self, name: str, member: str, cap: int, now: float,
                         ttl: float) -> bool:
        """Take a place for ``member`` in the set ``name`` until ``now + ttl``, unless the set
        holds ``cap`` live places already; whether it was taken."""
        ...

    async def free_place(self, name: str, member: str) -> None:
        """Give ``member``'s place in ``name`` back (nothing if it holds none)."""
        ...


class MemoryDirectory:
    """A :class:`Directory` in this process's memory, for one relay instance.

    :param max_hosts: live entries at most; registering a new ID beyond that is refused
        (after dropping expired entries).
    """

    def __init__(self, max_hosts: int = 10_000) -> None:
        self.max_hosts = max_hosts
        self._entries: dict[str, Entry] = {}
        # Instances in this process sharing this directory (tests, or several listeners).
        self._inboxes: dict[str, asyncio.Queue[bytes]] = {}
        self._buckets: dict[tuple[float, int], RateLimiter] = {}
        self._places = Places()

    def _live(self, host_id: str, now: float) -> Entry | None:
        entry = self._entries.get(host_id)
        if entry is not None and now >= entry.expires:
            del self._entries[host_id]
            return None
        return entry

    def sweep(self, now: float) -> int:
        """Drop expired entries; how many were dropped."""
        expired = [key for key, entry in self._entries.items() if now >= entry.expires]
        for key in expired:
            del self._entries[key]
        for limiter in self._buckets.values():
            limiter.sweep(now)
        self._places.sweep(now)
        return len(expired)

    def __len__(self) -> int:
        return len(self._entries)

    async def register(
        self, host_id: str, spki: bytes, instance: str, connection: str, now: float, ttl: float
    ) -> Entry | None:
        old = self._live(host_id, now)
        if old is not None and old.spki != spki:
            raise DirectoryRefusal("the ID is registered with another key")
        if old is None and len(self._entries) >= self.max_hosts and not self.sweep(now):
            raise DirectoryRefusal("the relay has no room for more hosts")
        self._entries[host_id] = Entry(host_id, spki, instance, connection, now + ttl)
        return old

    async def heartbeat(self, host_id: str, connection: str, now: float, ttl: float) -> bool:
        entry = self._live(host_id, now)
        if entry is None or entry.connection != connection:
            return False
        self._entries[host_id] = dataclasses.replace(entry, expires=now + ttl)
        return True

    async def lookup(self, host_id: str, now: float) -> Entry | None:
        return self._live(host_id, now)

    async def unregister(self, host_id: str, connection: str) -> bool:
        entry = self._entries.get(host_id)
        if entry is None or entry.connection != connection:
            return False
        del self._entries[host_id]
        return True

    async def ready(self) -> bool:
        return True

    async def forward(self, instance: str, request: bytes) -> bool:
        inbox = self._inboxes.get(instance)
        if inbox is None or inbox.full():
            return False
        inbox.put_nowait(request)
        return True

    async def take(self, bucket: str, rate: float, burst: int, now: float) -> bool:
        limiter = self._buckets.get((rate, burst))
        if limiter is None:
            limiter = self._buckets[(rate, burst)] = RateLimiter(rate, burst)
        return limiter.allow(bucket, now)

    async def take_place(self, name: str, member: str, cap: int, now: float,
                         ttl: float) -> bool:
        return self._places.take(name, member, cap, now, ttl)

    async def free_place(self, name: str, member: str) -> None:
        self._places.free(name, member)

    async def requests(self, instance: str) -> AsyncIterator[bytes]:
        inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)
        self._inboxes[instance] = inbox
        try:
            while True:
                yield await inbox.get()
        finally:
            if self._inboxes.get(instance) is inbox:
                del self._inboxes[instance]
