"""What carries one viewer's messages to the host, whatever it is.

The host serves a viewer over a :class:`Transport`: a TLS websocket accepted on its own port
(:class:`WebsocketTransport`), or an end-to-end encrypted channel through a relay. Everything
above this seam (admission, the session, the sender) is the same for both.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["Transport", "TransportClosed", "WebsocketTransport"]


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


class WebsocketTransport:
    """A viewer that connected to the host's own TLS websocket port."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        addr = ws.remote_address
        self.remote = str(addr[0]) if addr else "?"
        ssl_object = ws.transport.get_extra_info("ssl_object") if ws.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.peer_certificate: bytes | None = der

    async def send(self, frame: str | bytes) -> None:
        try:
            await self.ws.send(frame)
        except ConnectionClosed:
            raise TransportClosed from None

    async def recv(self) -> str | bytes:
        try:
            return await self.ws.recv()
        except ConnectionClosed:
            raise TransportClosed from None

    async def close(self, code: int, reason: str) -> None:
        # A websocket close reason is at most 123 bytes of UTF-8: cut by bytes, not characters.
        cut = reason.encode()[:120].decode(errors="ignore")
        with contextlib.suppress(Exception):
            await self.ws.close(code, cut)
