"""Getting in: open the TLS websocket, pin the host key, authenticate.

The steps of :func:`rdesk.client.connection.connect` before the connection runs, in order:

1. :func:`open_websocket`: TLS and the websocket upgrade, with explicit size limits and no
   websocket-level keepalive (the rdesk session's pings keep the connection, one keepalive);
2. :func:`pin_host_key`: the host key's fingerprint (SPKI SHA-256) checked against known_hosts
   or a pinned one — raising **before any credential is sent**; a host verified by a CA
   (``--ca-file``: chain and host name, checked in the TLS handshake) needs no pin;
3. :func:`authenticate`: the host's Hello, our Auth, and its Welcome (with any Notices
   while the host's local user decides, or while it serves this address's failed-login
   delay, which it announces and we wait out up to :data:`MAX_LOGIN_DELAY_WAIT`), each read
   with its own timeout; the session's handshake deadline, run by
   :class:`~rdesk.client.timers.SessionTimers`, bounds the whole.

Every failure is a :class:`~rdesk.client.errors.ConnectError` with a one-line message.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rdesk.client.address import HostAddress
from rdesk.client.errors import AuthenticationFailed, ConnectError
from rdesk.client.known_hosts import CertificateNotTrusted, KnownHosts, verify_certificate
from rdesk.client.tls import client_ssl_context
from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode
from rdesk.protocol.fingerprint import key_fingerprint
from rdesk.protocol.messages import PROTOCOL_VERSION, Auth, Close, Hello, Notice, Welcome
from rdesk.protocol.session import Session

__all__ = [
    "CONSENT_WAIT",
    "MAX_LOGIN_DELAY_WAIT",
    "PasswordSource",
    "authenticate",
    "open_websocket",
    "pin_host_key",
]

#: Seconds to wait for a host whose local user must accept the connection.
CONSENT_WAIT = 120.0

#: Longest failed-login penalty a viewer waits out, seconds (the host's ceiling is 30).
MAX_LOGIN_DELAY_WAIT = 60.0

PasswordSource = Callable[[], str]

async def open_websocket(
    address: HostAddress, timeout: float, ssl_context: ssl.SSLContext | None = None,
    *, sock: socket.socket | None = None,
) -> ClientConnection:
    """The TLS websocket to ``address`` (over ``sock`` when given, a connected TCP socket:
    the relay's raw lane); :class:`ConnectError` if it cannot be opened."""
    try:
        return await ws_connect(
            address.uri,
            sock=sock,
            ssl=ssl_context if ssl_context is not None else client_ssl_context(),
            server_hostname=address.host,
            open_timeout=timeout,
            # Explicit limits (docs/protocol.md, "Limits"): a host sends updates at most this big.
            max_size=limits.MAX_UPDATE_MESSAGE,
            max_queue=4,
            compression=None,
            # The session's own pings keep the connection and measure it: one keepalive.
            ping_interval=None,
            close_timeout=5,
            user_agent_header=None,
        )
    except InvalidStatus as exc:
        raise ConnectError(
            f"{address} is not an rdesk host (HTTP {exc.response.status_code})"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        # Only a context with a CA file verifies (client_ssl_context): the CA does not vouch.
        why = " ".join(str(exc.verify_message or exc.reason or exc).split())
        raise CertificateNotTrusted(
            f"{address}: the host's certificate is not trusted by the CA file ({why}); "
            "nothing was sent"
        ) from None
    except ssl.SSLError as exc:
        raise ConnectError(f"{address}: TLS handshake failed ({exc.reason or exc})") from None
    except (InvalidHandshake, EOFError) as exc:
        raise ConnectError(f"{address} is not an rdesk host ({exc})") from None
    except asyncio.TimeoutError:
        raise ConnectError(f"{address}: no answer within {timeout:g} s") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectError(f"cannot reach {address}: {reason}") from None


def pin_host_key(
    ws: ClientConnection,
    address: HostAddress,
    known_hosts: KnownHosts | None,
    pinned: str | None,
    accept_new: bool,
    *,
    ca_verified: bool = False,
) -> str:
    """The host key's fingerprint (SPKI SHA-256), once it is the one expected.

    An explicit ``pinned`` (a key fingerprint, or a certificate one as pins were before) is
    always checked. Otherwise ``known_hosts`` is, unless ``ca_verified``: the TLS handshake
    already verified the certificate's chain to the user's CA file and its host name, which is
    the trust a CA-signed host (renewed with a new key) gets instead of a pin. A remembered
    certificate fingerprint that matches is rewritten as the key's.

    Raises :class:`~rdesk.client.known_hosts.HostKeyMismatch` or
    :class:`~rdesk.client.known_hosts.UnknownHostKey` (nothing has been sent yet), or
    :class:`ConnectError` if the host presented no certificate.
    """
    ssl_object = ws.transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        raise ConnectError(f"{address}: the host presented no certificate")
    known = None if ca_verified else known_hosts  # the CA vouched: only a pin is still checked
    if known is None and pinned is None and not ca_verified:
        raise ConnectError(f"{address}: nothing to check the host key against")
    try:
        if known is None and pinned is None:
            return key_fingerprint(der)
        return verify_certificate(known, address.host, address.port, der, pinned=pinned,
                                  accept_new=accept_new)
    except ValueError as exc:
        raise ConnectError(f"{address}: unreadable host certificate ({exc})") from None


async def authenticate(
    ws: ClientConnection,
    session: Session,
    address: HostAddress,
    password: str | PasswordSource,
    name: str,
    timeout: float,
) -> Welcome:
    """Run the handshake on ``session``: the host's Welcome once it admitted us.

    ``password`` (a callable is asked only now, after the host key was accepted) is sent
    only if the host offers password login; a host that admits by client certificate gets
    none. Raises :class:`AuthenticationFailed` if the credential is refused,
    :class:`ConnectError` for any other refusal or silence, and
    :class:`~rdesk.protocol.errors.RemoteProtocolError` for a host breaking the protocol.
    """
    hello = session.receive(await _recv(ws, address, timeout), time.monotonic())
    if isinstance(hello, Close):
        raise ConnectError(f"{address} refused the connection: {hello.reason}")
    assert isinstance(hello, Hello)  # the state machine allows nothing else here
    offered_methods = hello.methods.split(",")
    if "password" in offered_methods:
        method, secret = "password", password if isinstance(password, str) else password()
    elif "certificate" in offered_methods:
        # The host admits by client certificate (already presented in the TLS handshake).
        method, secret = "certificate", ""
    else:
        raise ConnectError(f"{address} offers no login method this viewer knows")
    auth = Auth(PROTOCOL_VERSION, session.nonce or "", method, secret, name[:64])
    await ws.send(session.send(auth, time.monotonic()))
    reply = session.receive(await _recv(ws, address, timeout), time.monotonic())
    while isinstance(reply, Notice):
        # The number, not the text (docs/protocol.md, notice): 0 is any other notice.
        delay = reply.delay or None
        if delay is None:
            # The host asks its local user to accept us: wait as long as that may take (the
            # session's handshake deadline still bounds the whole, however many Notices come).
            wait = max(timeout, CONSENT_WAIT)
        else:
            # The host serves a failed-login penalty first: giving up would count as one more
            # failure and lengthen the next wait, so wait it out (bounded).
            wait = timeout + min(delay, MAX_LOGIN_DELAY_WAIT)
        try:
            frame = await _recv(ws, address, wait)
        except ConnectError:
            if delay is None:
                raise
            raise ConnectError(
                f"{address}: the host delays logins from this address after failed attempts; "
                f"try again in {delay} s"
            ) from None
        reply = session.receive(frame, time.monotonic())
    if isinstance(reply, Close):
        if reply.code == CloseCode.AUTH_FAILED:
            raise AuthenticationFailed(f"{address}: authentication failed ({reply.reason})")
        raise ConnectError(f"{address} refused the connection: {reply.reason}")
    assert isinstance(reply, Welcome)
    return reply


async def _recv(ws: ClientConnection, address: HostAddress, timeout: float) -> str | bytes:
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise ConnectError(f"{address}: the host did not answer within {timeout:g} s") from None
    except ConnectionClosed as exc:
        reason = exc.rcvd.reason if exc.rcvd and exc.rcvd.reason else "connection closed"
        if exc.rcvd and exc.rcvd.code == CloseCode.AUTH_FAILED:
            raise AuthenticationFailed(f"{address}: authentication failed ({reason})") from None
        raise ConnectError(f"{address} closed the connection: {reason}") from None
