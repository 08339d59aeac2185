"""The viewer's end of a relay's raw lane: the host's own TLS, through bytes the relay copies.

When the relay answers ``connect`` with ``raw {address, port, ticket}`` (docs/relay.md, "The
raw lane"), the viewer opens plain TCP to that splice port, presents its ticket
(:func:`~rdesk.tunnel.rawdial.dial_splice_port`), and once the relay says ``GO`` runs TLS with
the **host** over that socket and the host's websocket on top — what a direct viewer gets from
:func:`~rdesk.client.handshake.open_websocket`. The host's certificate is not checked by a CA
or a name but as the tunnel checks it (:func:`~rdesk.tunnel.keys.check_host`): its key must
hash to the ID asked for and match the pin if there is one, as the TLS handshake ends and
before anything is sent over it — the websocket's opening request, the credential.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import re
import ssl

from websockets.asyncio.client import ClientConnection

from rdesk.client.address import WS_PATH, HostAddress
from rdesk.client.errors import ConnectError
from rdesk.client.handshake import open_websocket
from rdesk.client.tls import client_ssl_context
from rdesk.protocol.rawlane import TICKET_BYTES, RawLaneError
from rdesk.tunnel.errors import HostIdentityError
from rdesk.tunnel.keys import check_host
from rdesk.tunnel.rawdial import dial_splice_port

__all__ = ["RawOffer", "RawLaneUnavailable", "open_raw", "parse_raw"]

_HOSTNAME = re.compile(r"[A-Za-z0-9.:_-]{1,253}")


class RawLaneUnavailable(ConnectError):
    """The relay's splice port could not be used (unreachable, refused): the websocket lane
    may still work."""


@dataclasses.dataclass(frozen=True)
class RawOffer:
    """The relay's ``raw`` answer: where its splice port is (``None``: the relay's own host
    name) and the viewer's one-time ticket."""

    address: str | None
    port: int
    ticket: bytes


def parse_raw(message: dict[str, object]) -> RawOffer:
    """The offer in a ``raw`` message (its ``t`` already checked); :class:`ConnectError` if
    any field is missing, extra or out of bounds."""
    address, port, ticket = message.get("address"), message.get("port"), message.get("ticket")
    try:
        if set(message) != {"t", "address", "port", "ticket"}:
            raise ValueError("unexpected fields")
        if address is not None and not (isinstance(address, str) and _HOSTNAME.fullmatch(address)):
            raise ValueError("bad address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("bad port")
        if not isinstance(ticket, str) or len(ticket) > 64:
            raise ValueError("bad ticket")
        raw = base64.b64decode(ticket, validate=True)
        if len(raw) != TICKET_BYTES:
            raise ValueError("bad ticket")
    except (ValueError, binascii.Error) as exc:
        raise ConnectError(f"the relay's raw answer is malformed ({exc})") from None
    return RawOffer(address, port, raw)


class _HostRefused(OSError):
    """The host's key is not the one asked for. An ``OSError``, so that asyncio's TLS layer
    ends the handshake with it quietly (any other exception is logged as a fatal error)."""


def _checking_context(host_id: str, pin: str | None,
                      refused: list[HostIdentityError]) -> ssl.SSLContext:
    """The viewer's TLS context whose handshake fails, before anything is sent on the
    connection — the websocket's opening request included —, unless the host's key hashes to
    ``host_id`` and matches ``pin``; the refusal is appended to ``refused``."""
    ctx = client_ssl_context()

    class Checked(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()  # raises SSLWantReadError until the handshake is done
            try:
                check_host(self.getpeercert(binary_form=True) or b"", host_id, pin)
            except HostIdentityError as exc:
                refused.append(exc)
                raise _HostRefused(exc.reason) from None

    ctx.sslobject_class = Checked
    return ctx


async def open_raw(address: HostAddress, host_id: str, offer: RawOffer, pin: str | None,
                   timeout: float) -> tuple[ClientConnection, str]:
    """The host's websocket over the raw lane, and the host key's fingerprint, once checked.

    ``address`` is the relay's (its host name stands in for ``offer.address`` when that is
    ``None``; it is also the TLS server name sent). Raises :class:`RawLaneUnavailable` when
    the splice port cannot be used, :class:`HostIdentityError` when the host is not
    ``host_id`` (or not ``pin``) — checked as the TLS handshake ends, so nothing at all was
    sent over it — and :class:`ConnectError` for the rest.
    """
    name = offer.address or address.host
    try:
        sock = await asyncio.wait_for(dial_splice_port(name, offer.port, offer.ticket), timeout)
    except (OSError, asyncio.TimeoutError, RawLaneError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise RawLaneUnavailable(f"the relay's splice port {name}:{offer.port}: {why}") from None
    refused: list[HostIdentityError] = []
    try:
        ws = await open_websocket(dataclasses.replace(address, path=WS_PATH), timeout,
                                  _checking_context(host_id, pin, refused), sock=sock)
    except ConnectError:
        sock.close()
        if refused:  # the TLS handshake was ended by the check: that is the error
            raise refused[0] from None
        raise
    except BaseException:
        sock.close()
        raise
    try:
        ssl_object = ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise HostIdentityError("the host presented no certificate")
        _, fingerprint = check_host(der, host_id, pin)
    except BaseException:
        await ws.close()
        raise
    return ws, fingerprint
