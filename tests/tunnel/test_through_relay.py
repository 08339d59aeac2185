"""The tunnel through the real relay: a real ``RelayServer``, a host's real ``RelayLink``
answering each rendezvous with :func:`accept_tunnel`, and a viewer that asks ``/connect`` for
the host's ID and opens the tunnel over the splice."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import ClientConnection, connect

from rdesk.client.tls import client_ssl_context
from rdesk.common.transport import TransportClosed
from rdesk.host.relaylink import RelayLink
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.protocol.fingerprint import fingerprint, key_fingerprint
from rdesk.relay.messages import Connect, encode
from rdesk.relay.server import RelayConfig, RelayServer
from rdesk.relay.tokens import TokenStore
from rdesk.tunnel.host_side import accept_tunnel
from rdesk.tunnel.viewer_side import open_tunnel
from rdesk.tunnel.wire import MAX_WIRE_MESSAGE
from tests.tunnel.identities import identity

BIG = os.urandom(3 * 1024 * 1024)


async def test_echo_through_the_real_relay(tmp_path: Path) -> None:
    cert, key = ensure_host_certificate(tmp_path / "relay")
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    tokens = TokenStore(tmp_path / "relay")
    token, _ = tokens.create("test host")
    events: list[tuple[str, dict[str, object]]] = []
    server = RelayServer(RelayConfig(bind="127.0.0.1", port=0), server_ssl_context(cert, key),
                         der, tokens=tokens,
                         on_event=lambda kind, fields: events.append((kind, dict(fields))))
    await server.start()
    host = identity("a")
    served: list[str | bytes] = []

    async def on_rendezvous(ws: ClientConnection) -> None:
        transport = await accept_tunnel(ws, host.key, host.cert_der, "relay")
        try:
            while True:
                message = await transport.recv()
                served.append(message)
                reply = "host:" + message if isinstance(message, str) else message[::-1]
                await transport.send(reply)
        except TransportClosed:
            pass

    url = f"wss://127.0.0.1:{server.port}"
    link = RelayLink(url, host.key, host.cert_der, token, server.fingerprint,
                     on_rendezvous=on_rendezvous, backoff=(0.05, 0.2))
    assert link.host_id == host.host_id
    link_task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.registered.wait(), 10)
        async with connect(url + "/connect", ssl=client_ssl_context(), compression=None,
                           max_size=MAX_WIRE_MESSAGE) as ws:
            relay_cert = ws.transport.get_extra_info("ssl_object").getpeercert(True)
            assert fingerprint(relay_cert) == server.fingerprint
            await ws.send(encode(Connect(host.host_id, 1)))
            assert json.loads(await ws.recv())["t"] == "spliced"
            sock = await open_tunnel(ws, host.host_id.lower(), key_fingerprint(host.cert_der))
            await sock.send("ping")
            assert await sock.recv() == "host:ping"
            await sock.send(BIG)
            assert await sock.recv() == BIG[::-1]
            await sock.close()
            assert sock.close_code == 1000
        assert served == ["ping", BIG]
    finally:
        await link.close()
        await asyncio.wait_for(link_task, 10)
        await server.stop()
    ends = [fields for kind, fields in events if kind == "splice_end"]
    assert len(ends) == 1
    assert isinstance(ends[0]["viewer_bytes"], int) and ends[0]["viewer_bytes"] > len(BIG)
