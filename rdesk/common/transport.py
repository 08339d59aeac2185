"""The seam a viewer's messages cross on the host, whatever carries them.

The host serves a viewer over a :class:`Transport`: a TLS websocket accepted on its own port
(:class:`rdesk.host.serve.transport.WebsocketTransport`), or an end-to-end encrypted tunnel
through a relay (:class:`rdesk.tunnel.host_side.TunnelTransport`). Everything above it
(admission, the session, the sender) is the same for both. Standard library only.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Transport", "TransportClosed"]


class TransportClosed(Exception):
    """The peer has gone (or the transport was closed): nothing more can be sent or read."""


class Transport(Protocol):
    """One viewer's ordered, message-framed, confidential and authenticated pipe.

    ``remote`` is the source used for per-source limits and the audit log. ``peer_certificate``
    is the DER of a verified TLS client certificate, when the transport has one.
    """

    remote: str
    peer_certificate: bytes | None

    async def send(self, frame: str | bytes) -> None:
        """Write one message; raises :class:`TransportClosed` once the peer has gone."""
        ...

    async def recv(self) -> str | bytes:
        """The next message; raises :class:`TransportClosed` when the peer has gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with a code and a short reason; idempotent, never raises."""
        ...
