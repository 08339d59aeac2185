"""What a viewer may do, as granted by its credential: an access level, not a connection end.

(The connection end, host or viewer, is :class:`rdesk.protocol.states.Role`.) It travels as
the strings ``"control"`` and ``"view"`` (``Welcome.role``, ``Peer.access``); the codec turns
them into this enum on receipt, so code compares against :class:`Access` members.
"""

from __future__ import annotations

import enum

__all__ = ["Access"]


class Access(str, enum.Enum):
    """``CONTROL`` may send input (when it holds control); ``VIEW`` may only watch."""

    CONTROL = "control"
    VIEW = "view"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> Access:
        """The access level named ``text``; raises ``ValueError`` naming the valid ones."""
        try:
            return cls(text)
        except ValueError:
            raise ValueError(
                f"unknown access {text[:20]!r}: use one of {', '.join(a.value for a in cls)}"
            ) from None
