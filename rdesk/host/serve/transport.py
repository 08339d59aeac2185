"""A viewer that connected to the host's own port: the websocket :class:`Transport`.

(The :class:`~rdesk.common.transport.Transport` seam itself lives in ``rdesk.common``, since
the relay's tunnel implements it too.)
"""

from __future__ import annotations

import contextlib

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from rdesk.common.transport import TransportClosed

__all__ = ["WebsocketTransport"]


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
