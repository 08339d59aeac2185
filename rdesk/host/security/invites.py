"""One-time invite codes with a role and an expiry, as support tools hand out session codes.

Codes are random (≈80 bits), shown once, stored only as SHA-256 digests, and consumed by their
first successful use. Time is passed in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading

from rdesk.protocol.fields import ROLES

__all__ = ["Invite", "InviteBook", "MAX_INVITES"]

_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)
#: Invites that may be outstanding at once (bounds memory; the oldest goes first).
MAX_INVITES = 256


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.strip().lower().encode()).digest()


@dataclasses.dataclass(frozen=True)
class Invite:
    """An outstanding invite: its role and when it expires (same clock as ``now``)."""

    role: str
    expires: float


class InviteBook:
    """Outstanding invite codes."""

    def __init__(self) -> None:
        self._invites: dict[bytes, Invite] = {}
        # Codes are redeemed from the credential-checking thread and created on the loop.
        self._lock = threading.Lock()

    def create(self, role: str, ttl: float, now: float) -> str:
        """Make a code granting ``role`` for ``ttl`` seconds; return it (shown only now)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not 0 < ttl <= 7 * 24 * 3600:
            raise ValueError("an invite lasts between 1 second and 7 days")
        groups = ("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))
        code = "inv-" + "-".join(groups)
        with self._lock:
            self._expire(now)
            while len(self._invites) >= MAX_INVITES:
                del self._invites[next(iter(self._invites))]
            self._invites[_digest(code)] = Invite(role, now + ttl)
        return code

    def redeem(self, code: str, now: float) -> str | None:
        """The role ``code`` grants, consuming it; ``None`` if unknown, used or expired.

        The lookup is by digest, so timing reveals nothing about stored codes.
        """
        with self._lock:
            self._expire(now)
            invite = self._invites.pop(_digest(code), None)
        return invite.role if invite is not None else None

    def __len__(self) -> int:
        return len(self._invites)

    def _expire(self, now: float) -> None:
        for key in [k for k, inv in self._invites.items() if inv.expires <= now]:
            del self._invites[key]
