"""Capped sets of places that expire, taking ``now``: the waiting-viewer cap's memory form.

A *place* is one member of a named set (the viewers waiting for one host ID); a set holds at
most ``cap`` live places, each until its own expiry. An expiry bounds how long a place can
outlive whoever took it, so a holder that dies without freeing it (a killed relay instance)
cannot keep the set full: the Redis form (:mod:`rdesk.relay.redisdir`) keeps the same rules
in a sorted set scored by expiry.
"""

from __future__ import annotations

__all__ = ["Places"]


class Places:
    """At most ``cap`` live places per set; at most ``max_sets`` sets (the oldest dropped)."""

    def __init__(self, *, max_sets: int = 10_000) -> None:
        self.max_sets = max_sets
        self._sets: dict[str, dict[str, float]] = {}

    def _live(self, name: str, now: float) -> dict[str, float]:
        members = self._sets.get(name, {})
        for member in [m for m, expires in members.items() if now >= expires]:
            del members[member]
        return members

    def take(self, name: str, member: str, cap: int, now: float, ttl: float) -> bool:
        """Take a place for ``member`` in ``name`` until ``now + ttl``; ``False`` (and nothing
        taken) if the set already holds ``cap`` live places."""
        members = self._live(name, now)
        if len(members) >= cap:
            return False
        members[member] = now + ttl
        if name not in self._sets:
            self._sets[name] = members
            while len(self._sets) > self.max_sets:
                del self._sets[next(iter(self._sets))]
        return True

    def free(self, name: str, member: str) -> None:
        """Give ``member``'s place back (nothing if it holds none, or it expired)."""
        members = self._sets.get(name)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._sets[name]

    def count(self, name: str, now: float) -> int:
        """Live places in ``name``."""
        return len(self._live(name, now))

    def sweep(self, now: float) -> None:
        """Forget expired places and empty sets (bounded memory)."""
        for name in list(self._sets):
            if not self._live(name, now):
                del self._sets[name]
