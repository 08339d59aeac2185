"""Real parts for the relay tests: a relay on 127.0.0.1 with TLS, hosts and viewers.

The relay is the real :class:`RelayServer` with its own self-signed certificate and a real
token store; hosts are real :class:`RelayLink` objects with real host keys; a viewer is a
websockets client on ``/connect`` that checks the relay's fingerprint like any client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rdesk.client.tls import client_ssl_context
from rdesk.host.relaylink import RelayLink, load_identity
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.protocol.fingerprint import fingerprint, pin_matches
from rdesk.protocol.hostid import host_id
from rdesk.relay import proof
from rdesk.relay.directory import Directory
from rdesk.relay.messages import (
    Challenge,
    Connect,
    Message,
    Prove,
    Register,
    Registered,
    decode,
    encode,
)
from rdesk.relay.server import RelayConfig, RelayServer
from rdesk.relay.tokens import TokenStore


@dataclasses.dataclass
class Relay:
    """A relay under test: in this process (``server``), or another process's (``remote``)."""

    port: int
    #: The relay's pin: the key fingerprint it prints (a certificate's works too).
    fingerprint: str
    token: str | None
    events: list[tuple[str, dict[str, object]]]
    _server: RelayServer | None = None

    @classmethod
    def remote(cls, port: int, fingerprint: str) -> Relay:
        return cls(port, fingerprint, None, [])

    @property
    def server(self) -> RelayServer:
        assert self._server is not None, "a relay in another process"
        return self._server

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def last(self, kind: str) -> dict[str, object]:
        return [fields for k, fields in self.events if k == kind][-1]


@contextlib.asynccontextmanager
async def running_relay(data_dir: Path, *, directory: Directory | None = None,
                        **config: Any) -> AsyncIterator[Relay]:
    """A relay on 127.0.0.1 (port 0) with one enrolment token; stopped and checked quiet."""
    cert, key = ensure_host_certificate(data_dir)
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    tokens = TokenStore(data_dir)
    token, _ = tokens.create("test host")
    events: list[tuple[str, dict[str, object]]] = []
    settings = RelayConfig(bind="127.0.0.1", port=0, **config)
    server = RelayServer(settings, server_ssl_context(cert, key), der, tokens=tokens,
                         directory=directory,
                         on_event=lambda kind, fields: events.append((kind, dict(fields))))
    await server.start()
    assert server.fingerprint == fingerprint(der)
    try:
        yield Relay(server.port, server.pin, token, events, server)
    finally:
        await server.stop()


@dataclasses.dataclass(frozen=True)
class Identity:
    key: ec.EllipticCurvePrivateKey
    cert_der: bytes


def host_identity(config_dir: Path) -> Identity:
    """A real host identity made the way ``rdesk host`` makes it."""
    cert, key = ensure_host_certificate(config_dir)
    return Identity(*load_identity(cert, key))


async def echo(ws: ClientConnection) -> None:
    """A host's rendezvous handler: answer each binary message with ``b"host:" + message``."""
    async for message in ws:
        assert isinstance(message, bytes)
        await ws.send(b"host:" + message)


def id_of(config_dir: Path) -> str:
    """The ID of the host identity :func:`host_identity` made in ``config_dir``."""
    return host_id(proof.spki_of_certificate(host_identity(config_dir).cert_der))


def make_link(relay: Relay, identity: Identity, *, token: str | None = "",
              on_rendezvous: Callable[[ClientConnection], Awaitable[None]] = echo,
              pin: str | None = "", **kwargs: Any) -> RelayLink:
    """A :class:`RelayLink` to ``relay`` (its token and pin unless told otherwise)."""
    return RelayLink(
        relay.url, identity.key, identity.cert_der,
        relay.token if token == "" else token,
        relay.fingerprint if pin == "" else pin,
        on_rendezvous=on_rendezvous, backoff=kwargs.pop("backoff", (0.05, 0.2)), **kwargs,
    )


@contextlib.asynccontextmanager
async def linked(link: RelayLink, *, registered: bool = True) -> AsyncIterator[RelayLink]:
    """Run ``link`` for the block (waiting for registration), then close it."""
    task = asyncio.ensure_future(link.run())
    try:
        if registered:
            await asyncio.wait_for(link.registered.wait(), 10)
        yield link
    finally:
        await link.close()
        await asyncio.wait_for(task, 10)


def relay_ssl() -> Any:
    return client_ssl_context()


async def open_ws(relay: Relay, path: str, **kwargs: Any) -> ClientConnection:
    """A websocket to ``relay``'s ``path``, with the relay's fingerprint checked."""
    ws = await connect(relay.url + path, ssl=relay_ssl(), compression=None,
                       max_size=kwargs.pop("max_size", 16 * 1024 * 1024), **kwargs)
    ssl_object = ws.transport.get_extra_info("ssl_object")
    assert pin_matches(relay.fingerprint, ssl_object.getpeercert(binary_form=True)) == "key"
    return ws


async def viewer(relay: Relay, host_id: str,
                 **kwargs: Any) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect a viewer to ``host_id`` (``kwargs`` for :func:`open_ws`, e.g. ``local_addr``
    for another source address); returns the websocket and the relay's answer."""
    ws = await open_ws(relay, "/connect", **kwargs)
    with contextlib.suppress(ConnectionClosed):  # a rate-limited viewer is refused at once
        await ws.send(encode(Connect(host_id, 1)))
    answer = json.loads(await asyncio.wait_for(ws.recv(), 15))
    return ws, answer


async def echo_through(relay: Relay, host_id: str, payload: bytes) -> None:
    """A viewer spliced to ``host_id`` (an :func:`echo` host) gets its message echoed."""
    ws, answer = await viewer(relay, host_id)
    assert answer == {"t": "spliced"}, answer
    await ws.send(payload)
    assert await ws.recv() == b"host:" + payload
    await ws.close()


async def quiet(relay: Relay, *, hosts: int = 0, timeout: float = 10.0) -> None:
    """Wait until the relay holds nothing but ``hosts`` control connections: no waiting
    viewer, no splice, no session, no other open websocket."""
    server = relay.server
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        open_sockets = len(server._server.connections) if server._server else 0
        state = (len(server.hosts), len(server.waiting), len(server.splices),
                 server.admission.sessions, open_sockets)
        if state == (hosts, 0, 0, 0, hosts):
            return
        if loop.time() > end:
            raise AssertionError(f"relay not quiet: (controls, waiting, splices, sessions, "
                                 f"sockets) = {state}")
        await asyncio.sleep(0.02)


def other_tasks() -> set[asyncio.Task[Any]]:
    """Tasks still alive besides the current one (a test must leave none behind)."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


async def try_register(relay: Relay, identity: Identity) -> tuple[ClientConnection, Message]:
    """Register by hand; the control websocket and the relay's answer to the proof."""
    spki = proof.spki_of_certificate(identity.cert_der)
    ws = await open_ws(relay, "/host")
    await ws.send(encode(Register(host_id(spki), spki, relay.token, 1)))
    challenge = decode(await ws.recv())
    assert isinstance(challenge, Challenge)
    # The proof binds the relay's certificate, as the host saw it (rdesk/host/relaylink).
    der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    signed = proof.register_input(challenge.nonce, fingerprint(der), host_id(spki))
    await ws.send(encode(Prove(proof.sign(identity.key, signed))))
    return ws, decode(await ws.recv())


async def raw_host(relay: Relay, identity: Identity) -> ClientConnection:
    """A host control connection registered by hand, that then ignores the relay."""
    ws, answer = await try_register(relay, identity)
    assert isinstance(answer, Registered), answer
    return ws
