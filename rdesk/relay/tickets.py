"""One-time tickets of the raw lane: which session and which end a preamble's ticket names.

Each raw rendezvous issues two tickets, one for the host and one for the viewer, each sent to
that peer only, over its TLS websocket to the relay. A ticket is 32 random bytes, good for one
use within ``lifetime`` seconds; :meth:`Tickets.take` consumes it. Looked up by its SHA-256,
so a dictionary probe does not compare secrets byte by byte (the digest of an unknown ticket
tells nothing). Bounded: at most ``capacity`` live tickets; the oldest is dropped first.

Pure: every call takes ``now``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import secrets

from rdesk.protocol.rawlane import TICKET_BYTES

__all__ = ["HOST", "VIEWER", "Ticket", "Tickets"]

#: The two ends a ticket may name.
HOST, VIEWER = "host", "viewer"


@dataclasses.dataclass(frozen=True)
class Ticket:
    """What a ticket names: the relay session and the end (:data:`HOST` or :data:`VIEWER`)."""

    session: str
    end: str
    expires: float


class Tickets:
    """The live tickets of one relay instance."""

    def __init__(self, lifetime: float = 10.0, capacity: int = 8192) -> None:
        self.lifetime = lifetime
        self.capacity = capacity
        self._live: collections.OrderedDict[bytes, Ticket] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._live)

    def issue(self, session: str, end: str, now: float) -> bytes:
        """A new ticket for ``end`` of ``session``."""
        ticket = secrets.token_bytes(TICKET_BYTES)
        self._live[hashlib.sha256(ticket).digest()] = Ticket(session, end, now + self.lifetime)
        while len(self._live) > self.capacity:
            self._live.popitem(last=False)
        return ticket

    def take(self, ticket: bytes, now: float) -> Ticket | None:
        """What ``ticket`` names, consuming it; ``None`` if unknown, used or expired."""
        found = self._live.pop(hashlib.sha256(ticket).digest(), None)
        if found is None or now >= found.expires:
            return None
        return found

    def forget(self, session: str) -> None:
        """Drop every ticket of ``session`` (its rendezvous ended)."""
        for digest in [d for d, t in self._live.items() if t.session == session]:
            del self._live[digest]

    def sweep(self, now: float) -> None:
        """Drop the expired tickets."""
        for digest in [d for d, t in self._live.items() if now >= t.expires]:
            del self._live[digest]
