"""Serving a viewer over a TCP socket the host did not accept itself: the raw lane's.

On a relay's raw lane (docs/relay.md) the host dials out to the relay's splice port and, once
the relay says ``GO``, is the **TLS server** on that socket, with its own certificate, and
serves the rdesk websocket protocol exactly as on its own port: the same websockets server
connection (``max_size``, ``max_queue``, ``close_timeout``, no websocket pings: the session
pings), the same ``process_request`` (only ``/rdesk`` opens a websocket), then
:meth:`HostServer.serve_transport` — the same login, limits, consent and audit. Only the
source differs: the caller names it (``relay:<session>``), since the peer address is the
relay's.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import NoReturn

from websockets.asyncio.server import Server, ServerConnection
from websockets.protocol import State
from websockets.server import ServerProtocol

from rdesk.host.serve.server import HostServer
from rdesk.host.serve.transport import WebsocketTransport
from rdesk.protocol import limits

__all__ = ["serve_accepted"]


async def _never_listens() -> NoReturn:
    raise RuntimeError("this server only serves sockets given to it")


class _GivenSockets(Server):
    """A websockets ``Server`` with no listening socket of its own: it serves the sockets
    given to it for as long as the host runs."""

    def is_serving(self) -> bool:
        return True


async def serve_accepted(host: HostServer, sock: socket.socket, remote: str) -> None:
    """Serve one viewer over ``sock`` (connected, nothing read from it yet) as ``remote``,
    until its session ends. Owns ``sock``; never raises for what the peer does (a failed TLS
    or websocket handshake is one ``rejected`` audit line)."""
    loop = asyncio.get_running_loop()
    timeout = host.settings.handshake_timeout

    async def lifecycle(connection: ServerConnection) -> None:
        # What websockets' own serve() does for each connection (its protocol_handler).
        try:
            async with asyncio.timeout(timeout):
                await connection.handshake(host.process_request, None, None)
            if connection.protocol.state is not State.OPEN:
                connection.transport.abort()
                return
            transport = WebsocketTransport(connection)
            transport.remote = remote
            async with connection:
                await host.serve_transport(transport)
        except Exception as exc:
            host.event("rejected", source=remote,
                       reason=f"handshake not completed ({type(exc).__name__})")
            connection.transport.abort()
        finally:
            server.handler_tasks.discard(asyncio.current_task())

    server = _GivenSockets(_never_listens, lifecycle)

    def factory() -> ServerConnection:
        protocol = ServerProtocol(max_size=limits.MAX_VIEWER_MESSAGE)
        return ServerConnection(protocol, server, ping_interval=None, close_timeout=5,
                                max_queue=16)

    sock.setblocking(False)
    try:
        await loop.connect_accepted_socket(factory, sock, ssl=host.ssl_context,
                                           ssl_handshake_timeout=timeout,
                                           ssl_shutdown_timeout=5)
    except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as exc:
        sock.close()
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
        host.event("rejected", source=remote,
                   reason=f"TLS handshake failed: {why or type(exc).__name__}")
        return
    # connection_made (after the TLS handshake) started the connection's task.
    if server.handler_tasks:
        await asyncio.gather(*list(server.handler_tasks), return_exceptions=True)
