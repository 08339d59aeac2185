"""A viewer that connected to the host's own port: the websocket :class:`Transport`.

(The :class:`~rdesk.common.transport.Transport` seam itself lives in ``rdesk.common``, since
the relay's tunnel implements it too.)
"""

from __future__ import annotations

import contextlib
import logging

from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed

from rdesk.common.tasks import awaiting
from rdesk.common.transport import Transport, TransportClosed
from rdesk.common.waiting import wait_at_most

__all__ = [
    "CLOSE_WAIT",
    "STOP_WAIT",
    "WEBSOCKET_REFUSALS",
    "WebsocketTransport",
    "wait_handlers",
    "websocket_refusal",
]

log = logging.getLogger(__name__)

#: Seconds :meth:`WebsocketTransport.close` may take before it cuts the TCP connection. The
#: websocket's own ``close_timeout`` bounds only the wait for the peer's close frame: the
#: close frame is first written with flow control, and a peer that stopped reading (frozen,
#: or behind a link that no longer drains) would hold that write, its handler and the host's
#: stop forever.
CLOSE_WAIT = 10.0
#: Seconds the host's stop waits for the connections' handlers to return: once after closing
#: the viewers, and once more after cutting the connections still open.
STOP_WAIT = 10.0


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
        """Close the websocket with ``code`` and ``reason``; never raises, and returns within
        about :data:`CLOSE_WAIT` seconds whatever the peer does (then the TCP connection is
        cut)."""
        # A websocket close reason is at most 123 bytes of UTF-8: cut by bytes, not characters.
        cut = reason.encode()[:120].decode(errors="ignore")
        with contextlib.suppress(Exception):  # best effort: the connection ends either way
            if not await wait_at_most(self.ws.close(code, cut), CLOSE_WAIT):
                log.warning("viewer %s did not take the close within %s s: connection cut",
                            self.remote, CLOSE_WAIT)
                self.ws.transport.abort()


async def wait_handlers(server: Server) -> None:
    """Wait until every connection handler of ``server`` (closed: no longer accepting) has
    returned, within about 2 × :data:`STOP_WAIT` seconds whatever the peers and handlers do.

    After :data:`STOP_WAIT` the TCP connections still open are cut (a handler held by its peer,
    a close frame no one reads, then ends); after :data:`STOP_WAIT` more, the handlers still
    running are abandoned, and a warning names each one and what it awaits.
    """
    if await wait_at_most(server.wait_closed(), STOP_WAIT):
        return
    still_open = list(server.all_connections)
    log.warning("stopping: %d connection(s) still open after %s s: cut", len(still_open),
                STOP_WAIT)
    for connection in still_open:
        connection.transport.abort()
    if await wait_at_most(server.wait_closed(), STOP_WAIT):
        return
    log.warning("stopping: abandoned %d connection handler(s) still running: %s",
                len(server.handler_tasks), "; ".join(awaiting(t) for t in server.handler_tasks))


#: Close codes the websocket layer itself sends when a peer breaks its rules.
WEBSOCKET_REFUSALS = {1002: "websocket protocol error", 1007: "invalid UTF-8 in a text frame",
                      1009: "message over the size limit"}


def websocket_refusal(transport: Transport) -> tuple[int, str] | None:
    """The code and reason when the websocket layer (not rdesk) closed ``transport`` because
    the peer broke its rules (an oversize frame, bad UTF-8, a protocol error); else ``None``."""
    ws = getattr(transport, "ws", None)
    sent = getattr(getattr(ws, "protocol", None), "close_sent", None)
    code = getattr(sent, "code", None)
    if code in WEBSOCKET_REFUSALS:
        return int(code), WEBSOCKET_REFUSALS[code]
    return None
