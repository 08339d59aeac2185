"""Reaching a host by its ID through a relay: the relay's websocket, then the tunnel.

A host reached through a relay has the address ``wss://RELAY[:PORT]/id/ID``
(:func:`relayed_url`, :func:`parse_relayed`): any face that takes a URL takes it, and
:func:`rdesk.client.connection.connect` sees the ``/id/`` path and calls
:func:`open_relayed`, which returns the end-to-end tunnel to use in place of the host's own
TLS websocket. In order, and before anything of the session is sent:

1. TLS to the relay, its certificate checked like a host's: against a pin, or the
   ``known_hosts`` entry of the relay's address — trusted on first use (the relay is trusted
   for availability only, docs/relay.md), refused if it changed;
2. ``{"t": "connect", "id": ID, "version": 1}``, then the relay's ``spliced`` — or its
   ``refused {reason}`` as :class:`UnknownHostID` or :class:`RelayRefused`;
3. :func:`~rdesk.tunnel.viewer_side.open_tunnel`, with the pin of this ID (explicit, or the
   ``known_hosts`` entry of the ID): the host's key must hash to the ID and equal the pin.
   A first contact pins the key under the ID, as the ID already vouched for it; an entry
   holding a certificate fingerprint (written before key pins) is rewritten with the key's.

IDs are stored in ``known_hosts`` without a port, as ``XXXX-XXXX-XXXXX`` (an ID names a key,
not a place); entries written as ``ID:1`` by earlier versions are still read, and rewritten
port-less on the next write of that entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import ssl
import urllib.parse

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rdesk.client.address import HostAddress
from rdesk.client.errors import ConnectError
from rdesk.client.known_hosts import (
    HostKeyMismatch,
    KnownHosts,
    normalize_fingerprint,
    verify_certificate,
)
from rdesk.client.rawlane import RawLaneUnavailable, RawOffer, open_raw, parse_raw
from rdesk.client.tls import client_ssl_context
from rdesk.protocol.hostid import parse_host_id
from rdesk.tunnel.errors import HostIdentityError, TunnelError
from rdesk.tunnel.viewer_side import TunnelSocket, open_tunnel
from rdesk.tunnel.wire import MAX_WIRE_MESSAGE

__all__ = [
    "DEFAULT_RELAY_PORT",
    "ID_PATH",
    "ID_PORT",
    "IDKeyMismatch",
    "RelayRefused",
    "RelayUnreachable",
    "RelayedAddress",
    "UnknownHostID",
    "open_relayed",
    "parse_relayed",
    "relayed_url",
]

log = logging.getLogger(__name__)

DEFAULT_RELAY_PORT = 8443
#: The path prefix that makes a relay URL name a host: ``/id/ID``.
ID_PATH = "/id/"
#: The port of an ID's ``known_hosts`` entry: none (:class:`~rdesk.client.known_hosts.KnownHosts`).
ID_PORT = None
#: Largest control message of the relay (its ``refused``/``spliced`` answers).
_MAX_CONTROL = 4096
#: What the relay answers for an ID it does not hold (rdesk/relay/server.py).
_UNKNOWN_ID = "unknown or offline ID"
#: The lanes a relayed address may ask for (``""``: ``auto``).
LANES = ("", "auto", "raw", "ws")
#: Seconds the relay may take to find the host, on top of the viewer's own timeout: it waits
#: up to 10 s for the host's answer to the rendezvous.
_RENDEZVOUS_WAIT = 12.0


class RelayUnreachable(ConnectError):
    """The relay could not be reached (no route, refused, no answer, TLS failed)."""


class RelayRefused(ConnectError):
    """The relay answered ``refused {reason}`` (full, rate-limited, shutting down...)."""


class UnknownHostID(RelayRefused):
    """The relay holds no host with this ID: wrong ID, or the host is offline."""


class IDKeyMismatch(HostKeyMismatch):
    """The host at the end of the tunnel is not the one the ID (and the pin) name.

    Raised before any record is sent: no credential has left the viewer.
    """

    def __init__(self, host_id: str, expected: str, reason: str, *, pinned: bool) -> None:
        super().__init__(host_id, ID_PORT, expected, "?", pinned=pinned)
        self.args = (
            f"host {host_id}: {reason}; refusing to connect (the relay or someone on the way "
            "may be impersonating the host)",
        )


@dataclasses.dataclass(frozen=True)
class RelayedAddress(HostAddress):
    """A host by ID through a relay: ``host``/``port`` are the relay's, ``host_id`` the ID."""

    host_id: str = ""
    #: Which relay lane to take: ``auto`` (raw when the relay offers it, else the tunnel over
    #: the relay's websocket), ``raw`` or ``ws`` only.
    lane: str = "auto"

    @property
    def relay(self) -> str:
        return HostAddress.__str__(self)

    def __str__(self) -> str:
        return f"{self.host_id} (via relay {self.relay})"


def relayed_url(relay: str, host_id: str, lane: str = "auto") -> str:
    """``wss://RELAY:PORT/id/ID`` for ``relay`` (``wss://HOST[:PORT]``, default port 8443),
    with ``/raw`` or ``/ws`` after the ID for a lane other than ``auto``.

    Raises :class:`ConnectError` for a relay that is not ``wss://HOST[:PORT]`` and
    ``ValueError`` for a malformed ID.
    """
    canonical = parse_host_id(host_id)
    text = relay.strip()
    if "://" not in text:
        text = "wss://" + text
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port or DEFAULT_RELAY_PORT
    except ValueError as exc:
        raise ConnectError(f"invalid relay address {relay!r}: {exc}") from None
    if parts.scheme != "wss" or not parts.hostname or parts.path not in ("", "/"):
        raise ConnectError(f"a relay address is wss://HOST[:PORT], not {relay[:80]!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    suffix = "" if lane == "auto" else f"/{lane}"
    return f"wss://{host}:{port}{ID_PATH}{canonical}{suffix}"


def parse_relayed(address: HostAddress) -> RelayedAddress | None:
    """The relayed address ``address`` stands for, or ``None`` for a host's own address.

    Raises :class:`ConnectError` for an ``/id/`` path that is not an ID.
    """
    if isinstance(address, RelayedAddress):
        return address
    if not address.path.startswith(ID_PATH):
        return None
    named, _, lane = address.path[len(ID_PATH):].partition("/")
    if lane not in LANES:
        raise ConnectError(f"unknown relay lane {lane[:16]!r} in {address.uri}: "
                           "it is raw, ws or auto")
    try:
        host_id = parse_host_id(named)
    except ValueError as exc:
        raise ConnectError(f"invalid host ID in {address.uri}: {exc}") from None
    return RelayedAddress(address.host, address.port, "/connect", host_id, lane or "auto")


def _check_relay(ws: ClientConnection, address: RelayedAddress, known: KnownHosts | None,
                 pin: str | None) -> None:
    ssl_object = ws.transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        raise ConnectError(f"relay {address.relay} presented no certificate")
    try:
        # The relay is trusted for availability only: first use is accepted (and remembered).
        verify_certificate(known, address.host, address.port, der, pinned=pin, accept_new=True)
    except ValueError as exc:
        raise ConnectError(f"relay {address.relay}: unreadable certificate ({exc})") from None


async def _open_relay(address: RelayedAddress, timeout: float,
                      ssl_context: ssl.SSLContext | None) -> ClientConnection:
    # The lanes this viewer takes, in the query: a relay without the raw lane ignores it.
    lanes = "" if address.lane == "ws" else "?lanes=raw,ws"
    try:
        return await ws_connect(
            f"wss://{address.relay}/connect{lanes}",
            ssl=ssl_context if ssl_context is not None else client_ssl_context(),
            server_hostname=address.host,
            open_timeout=timeout,
            max_size=MAX_WIRE_MESSAGE,  # the tunnel's largest message, whole
            max_queue=4,
            compression=None,
            ping_interval=None,  # the session's own pings keep the splice
            close_timeout=5,
            user_agent_header=None,
        )
    except InvalidStatus as exc:
        raise RelayUnreachable(
            f"{address.relay} is not an rdesk relay (HTTP {exc.response.status_code})"
        ) from None
    except ssl.SSLError as exc:
        raise RelayUnreachable(
            f"relay {address.relay}: TLS handshake failed ({exc.reason or exc})"
        ) from None
    except (InvalidHandshake, EOFError) as exc:
        raise RelayUnreachable(f"{address.relay} is not an rdesk relay ({exc})") from None
    except asyncio.TimeoutError:
        raise RelayUnreachable(f"relay {address.relay}: no answer within {timeout:g} s") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RelayUnreachable(f"cannot reach the relay {address.relay}: {reason}") from None


async def _splice(ws: ClientConnection, address: RelayedAddress,
                  timeout: float) -> RawOffer | None:
    """Ask for the host; return once ``spliced`` (``None``) or ``raw`` (its offer: only to
    a viewer that asked for the raw lane), raise the relay's refusal otherwise."""
    request = json.dumps({"t": "connect", "id": address.host_id, "version": 1})
    try:
        await ws.send(request)
        answer = await asyncio.wait_for(ws.recv(), timeout + _RENDEZVOUS_WAIT)
    except asyncio.TimeoutError:
        raise ConnectError(f"{address}: the relay did not answer in time") from None
    except ConnectionClosed as exc:
        why = exc.rcvd.reason if exc.rcvd and exc.rcvd.reason else "connection closed"
        raise RelayRefused(f"relay {address.relay} closed the connection: {why}") from None
    message: dict[str, object] = {}
    if isinstance(answer, str) and len(answer) <= _MAX_CONTROL:
        with contextlib.suppress(ValueError):
            decoded = json.loads(answer)
            message = decoded if isinstance(decoded, dict) else {}
    kind = message.get("t")
    if kind == "spliced" and len(message) == 1:
        return None
    if kind == "raw" and address.lane != "ws":
        return parse_raw(message)
    text = message.get("reason")
    if kind == "refused" and isinstance(text, str):
        reason = " ".join(text.split())[:120] or "refused"
        cls = UnknownHostID if reason == _UNKNOWN_ID else RelayRefused
        raise cls(f"relay {address.relay} refused {address.host_id}: {reason}")
    raise ConnectError(f"relay {address.relay} sent something other than spliced, raw or "
                       "refused")


async def open_relayed(
    address: RelayedAddress,
    *,
    known_hosts: KnownHosts | None,
    pinned: str | None,
    relay_pin: str | None = None,
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[TunnelSocket | ClientConnection, str]:
    """The verified connection to ``address.host_id`` and the host's key fingerprint: the
    host's own websocket on the raw lane (when the relay offers it and ``address.lane``
    allows), else the end-to-end tunnel over the relay's websocket. On ``auto``, a splice
    port that cannot be reached falls back to the websocket lane with one log line.

    ``pinned`` is the host's fingerprint if given explicitly (else its ``known_hosts`` entry
    under the ID is used, and written on first contact); ``relay_pin`` the relay's. Raises
    :class:`RelayUnreachable`, :class:`UnknownHostID`, :class:`RelayRefused`,
    :class:`IDKeyMismatch` (the host is not the one named: nothing was sent),
    :class:`~rdesk.client.known_hosts.HostKeyMismatch` (the relay's key changed) or
    :class:`ConnectError`; the relay's websocket is closed on every failure.
    """
    pin = pinned if pinned is not None else (
        known_hosts.lookup(address.host_id, ID_PORT) if known_hosts is not None else None
    )
    if pin is not None:
        pin = normalize_fingerprint(pin)
    ws = await _open_relay(address, timeout, ssl_context)
    session: TunnelSocket | ClientConnection
    try:
        _check_relay(ws, address, known_hosts, relay_pin)
        offer = await _splice(ws, address, timeout)
        if offer is None and address.lane == "raw":
            raise RelayRefused(f"relay {address.relay} offered no raw lane to "
                               f"{address.host_id} (asked for the raw lane only)")
        try:
            if offer is None:
                session = await open_tunnel(ws, address.host_id, pin)
                offered = session.fingerprint
            else:
                session, offered = await open_raw(address, address.host_id, offer, pin,
                                                  timeout)
                await ws.close()  # the relay's part is done
        except HostIdentityError as exc:
            raise IDKeyMismatch(address.host_id, pin or address.host_id, exc.reason,
                                pinned=pinned is not None) from None
        except TunnelError as exc:
            raise ConnectError(f"{address}: the tunnel failed: {exc.reason}") from None
    except RawLaneUnavailable as exc:
        await ws.close()
        if address.lane == "raw":
            raise
        log.warning("%s; taking the relay's websocket lane", exc)
        return await open_relayed(dataclasses.replace(address, lane="ws"),
                                  known_hosts=known_hosts, pinned=pinned,
                                  relay_pin=relay_pin, timeout=timeout, ssl_context=ssl_context)
    except BaseException:
        await ws.close()
        raise
    if known_hosts is not None and pinned is None and pin != offered:
        # First contact, or a certificate pin that matched: remember the key's fingerprint.
        known_hosts.replace(address.host_id, ID_PORT, offered)
    return session, offered
