"""A stand-in relay for the tunnel tests: real TLS websockets on 127.0.0.1 that splice a viewer
(``/connect``) to a waiting host (``/host``) message by message — honestly, or not.

``tamper(direction, index, data)`` sees every message (``"up"`` viewer → host, ``"down"`` host →
viewer, ``index`` counting from 0 per direction) and returns the list of messages to forward
instead: ``[data]`` to pass it, ``[]`` to drop it, two to duplicate it. ``route(hosts)`` picks
which waiting host a viewer is spliced to (the relay that swaps IDs).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from rdesk.host.security.tls import server_ssl_context
from rdesk.tunnel.wire import MAX_WIRE_MESSAGE

__all__ = ["Splice", "Tamper", "honest"]

Tamper = Callable[[str, int, "str | bytes"], "list[str | bytes]"]


def honest(direction: str, index: int, data: str | bytes) -> list[str | bytes]:
    return [data]


class Splice:
    """The relay: ``async with Splice(cert, key) as relay`` then ``relay.host(name)`` and
    ``relay.viewer()`` give connected client websockets."""

    def __init__(self, cert: Path, key: Path, tamper: Tamper = honest,
                 route: Callable[[dict[str, ServerConnection]], str] | None = None) -> None:
        self._ssl = server_ssl_context(cert, key)
        self._client_ssl = ssl.create_default_context(cafile=str(cert))
        self.tamper = tamper
        self.route = route or (lambda hosts: next(iter(hosts)))
        self.hosts: dict[str, ServerConnection] = {}
        self._host_arrived = asyncio.Condition()
        self._host_done: dict[str, asyncio.Event] = {}
        #: Every message the relay saw, as (direction, data), before tampering.
        self.seen: list[tuple[str, str | bytes]] = []
        self.port = 0

    async def __aenter__(self) -> Splice:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, ssl=self._ssl, max_size=MAX_WIRE_MESSAGE,
            compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    @contextlib.asynccontextmanager
    async def _client(self, path: str) -> AsyncIterator[ClientConnection]:
        async with connect(
            f"wss://127.0.0.1:{self.port}{path}", ssl=self._client_ssl,
            max_size=MAX_WIRE_MESSAGE, compression=None,
        ) as ws:
            yield ws

    def host(self, name: str) -> contextlib.AbstractAsyncContextManager[ClientConnection]:
        """A host's data websocket, waiting under ``name`` to be spliced."""
        return self._client(f"/host/{name}")

    def viewer(self) -> contextlib.AbstractAsyncContextManager[ClientConnection]:
        """A viewer's websocket, spliced to a waiting host once one is there."""
        return self._client("/connect")

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        if path.startswith("/host/"):
            name = path.removeprefix("/host/")
            done = self._host_done[name] = asyncio.Event()
            async with self._host_arrived:
                self.hosts[name] = ws
                self._host_arrived.notify_all()
            await done.wait()
        elif path == "/connect":
            async with self._host_arrived:
                await self._host_arrived.wait_for(lambda: bool(self.hosts))
                name = self.route(self.hosts)
                host = self.hosts.pop(name)
            try:
                await self._splice(ws, host)
            finally:
                self._host_done[name].set()

    async def _splice(self, viewer: ServerConnection, host: ServerConnection) -> None:
        async def pump(source: ServerConnection, sink: ServerConnection, direction: str) -> None:
            index = 0
            with contextlib.suppress(ConnectionClosed):
                async for data in source:
                    self.seen.append((direction, data))
                    for out in self.tamper(direction, index, data):
                        await sink.send(out)
                    index += 1
            # A half-open splice is closed on both sides, passing on the closer's code.
            rcvd = source.protocol.close_rcvd
            code, reason = (rcvd.code, rcvd.reason) if rcvd is not None else (1011, "peer lost")
            await sink.close(code, reason)

        await asyncio.gather(pump(viewer, host, "up"), pump(host, viewer, "down"))
