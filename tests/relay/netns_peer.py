"""A host or a viewer for the network-namespace test, run inside its namespace.

``python -m tests.relay.netns_peer host URL PIN CONFIG_DIR`` keeps a RelayLink registered
(token on stdin) and echoes ``b"host:" + message`` on every rendezvous; it prints
``registered <ID>`` once registered. ``python -m tests.relay.netns_peer viewer URL PIN ID
HOST_ADDR`` tries to reach ``HOST_ADDR`` directly (it must fail), then reaches the host through
the relay and prints one JSON line of what happened.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from rdesk.client.tls import client_ssl_context
from rdesk.host.relaylink import RelayLink, load_identity
from rdesk.host.security.tls import ensure_host_certificate
from rdesk.protocol.fingerprint import pin_matches
from rdesk.relay.messages import Connect, encode


async def _echo(ws: ClientConnection) -> None:
    async for message in ws:
        await ws.send(b"host:" + (message if isinstance(message, bytes) else b""))


async def host(url: str, pin: str, config_dir: str) -> None:
    token = sys.stdin.readline().strip() or None
    key, cert_der = load_identity(*ensure_host_certificate(Path(config_dir)))
    link = RelayLink(url, key, cert_der, token, pin, on_rendezvous=_echo,
                     backoff=(0.1, 1.0))
    task = asyncio.ensure_future(link.run())
    await link.registered.wait()
    print(f"registered {link.host_id}", flush=True)
    await task


async def viewer(url: str, pin: str, host_id: str, host_addr: str) -> None:
    result: dict[str, object] = {}
    try:
        socket.create_connection((host_addr, 7900), timeout=3).close()
        result["direct"] = "connected"
    except OSError as exc:
        result["direct"] = exc.strerror or type(exc).__name__
    async with connect(url + "/connect", ssl=client_ssl_context(), compression=None) as ws:
        der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        result["pinned"] = pin_matches(pin, der) == "key"  # the relay prints its key's
        await ws.send(encode(Connect(host_id, 1)))
        result["answer"] = json.loads(await ws.recv())
        await ws.send(b"across namespaces")
        reply = await ws.recv()
        result["reply"] = reply.decode() if isinstance(reply, bytes) else reply
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    asyncio.run(host(*rest) if role == "host" else viewer(*rest))
