"""Real raw lane peers for the relay tests: a host that is a TLS server on its raw socket, and
a viewer that takes the ``raw`` answer to the splice port and runs TLS with the host.

The host echoes over its own TLS (its certificate: the one :func:`host_identity` made); the
viewer checks that certificate as rdesk viewers do (:func:`rdesk.tunnel.keys.check_host`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
from pathlib import Path
from typing import Any

from rdesk.client.tls import client_ssl_context
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.protocol.rawlane import GO, preamble
from rdesk.tunnel.keys import check_host
from rdesk.tunnel.rawdial import dial_splice_port
from tests.relay.harness import Relay, open_ws

RAW_PATH = "/connect?lanes=raw,ws"


class _Echo(asyncio.Protocol):
    def __init__(self, ended: asyncio.Future[None]) -> None:
        self.ended = ended
        self.started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        # "host:" once, then the bytes as they come (TLS may cut them anywhere).
        self.transport.write(data if self.started else b"host:" + data)
        self.started = True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class RawEchoHost:
    """``on_raw`` of a :class:`RelayLink`: TLS server with the host's certificate, echoing."""

    def __init__(self, config_dir: Path) -> None:
        cert, key = ensure_host_certificate(config_dir)
        self.ctx = server_ssl_context(cert, key)
        self.served = 0
        self.failed: list[str] = []

    async def __call__(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        try:
            await loop.connect_accepted_socket(lambda: _Echo(ended), sock, ssl=self.ctx,
                                               ssl_handshake_timeout=10)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            self.failed.append(type(exc).__name__)
            return
        self.served += 1
        await ended


async def raw_answer(relay: Relay, host_id: str) -> tuple[Any, dict[str, Any]]:
    """A viewer's ``/connect`` asking for the raw lane; its websocket and the relay's answer."""
    import json

    ws = await open_ws(relay, RAW_PATH)
    await ws.send(json.dumps({"t": "connect", "id": host_id, "version": 1}))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 15))


async def raw_viewer(relay: Relay, host_id: str, *, name: str = "127.0.0.1",
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A viewer on the raw lane to ``host_id``, TLS up with the host's checked key; the
    streams and the host key's fingerprint."""
    ws, answer = await raw_answer(relay, host_id)
    assert answer["t"] == "raw", answer
    sock = await dial_splice_port(answer["address"] or name, answer["port"],
                                  base64.b64decode(answer["ticket"]))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=client_ssl_context(),
                                                   server_hostname="rdesk")
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    _, fp = check_host(der, host_id, None)
    await ws.close()
    return reader, writer, fp


async def echo_raw(relay: Relay, host_id: str, payload: bytes = b"hello") -> None:
    reader, writer, _ = await raw_viewer(relay, host_id)
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(5 + len(payload)), 10) == b"host:" + payload
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def raw_quiet(relay: Relay, timeout: float = 10.0) -> None:
    """Wait until the relay holds no raw pair, no pending splice-port socket, no ticket."""
    raw = relay.server.raw
    assert raw is not None
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while raw.joined or raw.port.pending or len(raw.tickets):
        if loop.time() > end:
            raise AssertionError(f"raw lane not quiet: {len(raw.joined)} joined, "
                                 f"{len(raw.port.pending)} pending, {len(raw.tickets)} tickets")
        await asyncio.sleep(0.02)


async def echo_raw_from(relay: Relay, host_id: str, source: str) -> None:
    """Like :func:`echo_raw`, with the viewer's splice-port socket from address ``source``
    (another 127.0.0.0/8 address: another source for the relay's per-source limits)."""
    ws, answer = await raw_answer(relay, host_id)
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((source, 0))
    await loop.sock_connect(sock, ("127.0.0.1", answer["port"]))
    await loop.sock_sendall(sock, preamble(base64.b64decode(answer["ticket"])))
    assert await loop.sock_recv(sock, 1) == GO
    reader, writer = await asyncio.open_connection(sock=sock, ssl=client_ssl_context(),
                                                   server_hostname="rdesk")
    writer.write(b"hi")
    assert await asyncio.wait_for(reader.readexactly(7), 10) == b"host:hi"
    writer.close()
    await ws.close()
