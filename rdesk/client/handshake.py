"""Getting in: open the TLS websocket, pin the host key, authenticate.

The steps of :func:`rdesk.client.connection.connect` before the connection runs, in order:

1. :func:`open_websocket`: TLS and the websocket upgrade, with explicit size limits and no
   websocket-level keepalive (the rdesk session's pings keep the connection, one keepalive);
2. :func:`pin_host_key`: the certificate's fingerprint checked against known_hosts or a
   pinned one — raising **before any credential is sent**;
3. :func:`authenticate`: the host's Hello, our Auth, and its Welcome (with any Notices
   while the host's local user decides, or while it serves this address's failed-login
   delay, which it announces and we wait out up to :data:`MAX_LOGIN_DELAY_WAIT`), each read
   with its own timeout; the session's handshake deadline, run by
   :class:`~rdesk.client.timers.SessionTimers`, bounds the whole.

Every failure is a :class:`~rdesk.client.errors.ConnectError` with a one-line message.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rdesk.client.address import HostAddress
from rdesk.client.errors import AuthenticationFailed, ConnectError
from rdesk.client.known_hosts import (
    HostKeyMismatch,
    KnownHosts,
    normalize_fingerprint,
    verify_host_key,
)
from rdesk.client.tls import client_ssl_context
from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode
from rdesk.protocol.fingerprint import fingerprint
from rdesk.protocol.messages import PROTOCOL_VERSION, Auth, Close, Hello, Notice, Welcome
from rdesk.protocol.session import Session

__all__ = [
    "CONSENT_WAIT",
    "MAX_LOGIN_DELAY_WAIT",
    "PasswordSource",
    "authenticate",
    "login_delay",
    "open_websocket",
    "pin_host_key",
]

#: Seconds to wait for a host whose local user must accept the connection.
CONSENT_WAIT = 120.0

#: Longest failed-login penalty a viewer waits out, seconds (the host's ceiling is 30).
MAX_LOGIN_DELAY_WAIT = 60.0

PasswordSource = Callable[[], str]

# The host's Notice before a failed-login penalty (rdesk/host/serve/login.py, delay_notice).
_DELAY_NOTICE = re.compile(r"delays logins from this address\b.*\banswering in (\d{1,6}) s")


def login_delay(text: str) -> float | None:
    """The seconds a Notice's ``text`` says the host delays its answer to our login, or
    ``None`` when it is about something else (e.g. waiting for the local user's consent)."""
    match = _DELAY_NOTICE.search(text)
    return float(match.group(1)) if match else None


async def open_websocket(
    address: HostAddress, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> ClientConnection:
    """The TLS websocket to ``address``; :class:`ConnectError` if it cannot be opened."""
    try:
        return await ws_connect(
            address.uri,
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
) -> str:
    """The host certificate's fingerprint, once it is the one expected.

    Raises :class:`~rdesk.client.known_hosts.HostKeyMismatch` or
    :class:`~rdesk.client.known_hosts.UnknownHostKey` (nothing has been sent yet), or
    :class:`ConnectError` if the host presented no certificate.
    """
    ssl_object = ws.transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        raise ConnectError(f"{address}: the host presented no certificate")
    offered = fingerprint(der)
    if known_hosts is None:
        assert pinned is not None
        if normalize_fingerprint(pinned) != offered:
            raise HostKeyMismatch(address.host, address.port, pinned, offered, pinned=True)
    else:
        verify_host_key(
            known_hosts, address.host, address.port, offered, pinned=pinned,
            accept_new=accept_new,
        )
    return offered


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
        delay = login_delay(reply.text)
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
                f"try again in {math.ceil(delay)} s"
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
