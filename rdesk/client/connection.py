"""The viewer's I/O edge: connect, pin the host key, authenticate, follow the screen.

Every face (the desktop window, the browser page's Python twin, the CLI verbs) sits on
:func:`connect` and :class:`Connection`. The library never prompts: a first-contact host key
raises :class:`~rdesk.client.known_hosts.UnknownHostKey` and a changed one
:class:`~rdesk.client.known_hosts.HostKeyMismatch` — both **before any credential is sent** —
and the password is asked of a callable only after the host key was accepted.

:func:`connect` puts the two halves together: getting in (:mod:`rdesk.client.handshake`)
and the running connection (:mod:`rdesk.client.running`). The session's timers
(:class:`~rdesk.client.timers.SessionTimers`) are one task from the first message to the
last: they bound the handshake, then send the keepalive pings and close a connection whose
host stops answering them (close code ``UNRESPONSIVE``). The public names of both halves
are importable from here.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable
from typing import TypeVar, cast

from websockets.asyncio.client import ClientConnection

from rdesk.client.address import DEFAULT_PORT, WS_PATH, HostAddress, parse_url
from rdesk.client.errors import AuthenticationFailed, ConnectError, ConnectionLost
from rdesk.client.framebuffer import DEFAULT_MAX_SCREEN_PIXELS
from rdesk.client.handshake import (
    CONSENT_WAIT,
    PasswordSource,
    authenticate,
    open_websocket,
    pin_host_key,
)
from rdesk.client.known_hosts import KnownHosts
from rdesk.client.parts import Stats, abort, cancel
from rdesk.client.relayed import open_relayed, parse_relayed
from rdesk.client.running import Connection
from rdesk.client.timers import SessionTimers
from rdesk.client.video import available as video_available
from rdesk.protocol.errors import CloseCode, ProtocolError
from rdesk.protocol.session import PING_INTERVAL, PING_TIMEOUT, Session
from rdesk.protocol.states import Role

__all__ = [
    "DEFAULT_PORT",
    "WS_PATH",
    "AuthenticationFailed",
    "ConnectError",
    "Connection",
    "ConnectionLost",
    "HostAddress",
    "Stats",
    "connect",
    "parse_url",
]

T = TypeVar("T")


async def connect(
    url: str | HostAddress,
    password: str | PasswordSource,
    *,
    known_hosts: KnownHosts | None,
    pinned: str | None = None,
    accept_new: bool = False,
    name: str = "rdesk viewer",
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
    handshake_timeout: float | None = None,
    ping_interval: float = PING_INTERVAL,
    ping_timeout: float = PING_TIMEOUT,
    relay_pin: str | None = None,
    video: bool = True,
    max_pixels: int = DEFAULT_MAX_SCREEN_PIXELS,
) -> Connection:
    """Connect to a host, verify its key, authenticate, and start following its screen.

    ``known_hosts`` may be ``None`` only together with ``pinned``. ``password`` may be a
    callable, asked only once the host key has been accepted. Raises :class:`ConnectError`
    (unreachable, not rdesk, wrong version, refused, handshake not done in time),
    :class:`AuthenticationFailed`, :class:`~rdesk.client.known_hosts.HostKeyMismatch` or
    :class:`~rdesk.client.known_hosts.UnknownHostKey`.

    ``ssl_context`` replaces the default :func:`~rdesk.client.tls.client_ssl_context` (e.g.
    one made with ``cert=``/``key=`` to present a client certificate). A context that verifies
    the host (``client_ssl_context(cafile)``: chain to the CA file and host name) stands in
    for the pin: ``known_hosts`` is then neither consulted nor written (it may be ``None``),
    and only an explicit ``pinned`` is still checked. The verification failing raises
    :class:`~rdesk.client.known_hosts.CertificateNotTrusted`.

    Timers: each handshake step waits ``timeout`` seconds (a host asking its user for
    consent, up to :data:`~rdesk.client.handshake.CONSENT_WAIT`); ``handshake_timeout``
    bounds the whole handshake (default: ``2 * timeout + CONSENT_WAIT``). Once admitted, a
    ping goes out after ``ping_interval`` idle seconds and the connection closes
    (``UNRESPONSIVE``) if a pong takes more than ``ping_timeout``.

    A relayed address (``wss://RELAY/id/ID``, :mod:`rdesk.client.relayed`) goes through the
    relay and the end-to-end tunnel instead, ``pinned`` or ``known_hosts`` pinning the host
    under its ID and ``relay_pin`` the relay; the session inside is the same. It also raises
    the relay's errors (:class:`~rdesk.client.relayed.RelayUnreachable`,
    :class:`~rdesk.client.relayed.UnknownHostID`, :class:`~rdesk.client.relayed.RelayRefused`).

    ``video``: declare an H.264 decoder (when PyAV imports here), so the host may send moving
    regions as video (:mod:`rdesk.client.video`); ``False`` keeps to tiles.

    ``max_pixels``: the largest host screen accepted (the welcome's or a later resize's);
    a larger one ends the connection (``TOO_BIG``) with a one-line reason, before its image
    is allocated.
    """
    address = url if isinstance(url, HostAddress) else parse_url(url)
    ca_verified = (ssl_context is not None and ssl_context.check_hostname
                   and ssl_context.verify_mode == ssl.CERT_REQUIRED)
    if known_hosts is None and pinned is None and not ca_verified:
        raise ValueError("connect() needs known_hosts, a pinned fingerprint or a CA context")
    if handshake_timeout is None:
        handshake_timeout = 2 * timeout + CONSENT_WAIT
    relayed = parse_relayed(address)
    if relayed is not None:
        # The host's key is verified inside open_relayed, before anything of the session.
        tunnel, offered = await open_relayed(relayed, known_hosts=known_hosts, pinned=pinned,
                                             relay_pin=relay_pin, timeout=timeout)
        ws = cast(ClientConnection, tunnel)  # a TunnelSocket has the surface used here
        address = relayed
    else:
        ws = await open_websocket(address, timeout, ssl_context)
    timer_task: asyncio.Task[None] | None = None
    try:
        if relayed is None:
            offered = pin_host_key(ws, address, known_hosts, pinned, accept_new,
                                   ca_verified=ca_verified)
        session = Session(
            Role.VIEWER, time.monotonic(), handshake_timeout=handshake_timeout,
            ping_interval=ping_interval, ping_timeout=ping_timeout,
        )
        timers = SessionTimers(session, ws.send)
        timer_task = asyncio.create_task(timers.run(), name="rdesk-viewer-timers")
        welcome = await _unless_late(
            authenticate(ws, session, address, password, name, timeout), timer_task
        )
        timers.poke()  # active now: the handshake deadline gave way to the keepalive's
    except ProtocolError as exc:
        await cancel(timer_task)
        await abort(ws, None, exc.code, exc.reason)
        raise ConnectError(f"{address}: {exc.reason}") from None
    except BaseException:
        await cancel(timer_task)
        await abort(ws, None, CloseCode.NORMAL, "")
        raise
    connection = Connection(ws, session, address, welcome, offered, timers, timer_task,
                            video=video and video_available(), max_pixels=max_pixels)
    connection.start()
    return connection


async def _unless_late(work: Awaitable[T], timer_task: asyncio.Task[None]) -> T:
    """``await work``, unless the session's timers fail first: then raise their error
    (the handshake deadline passed) and cancel ``work``."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, timer_task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        timer_task.result()  # raises: the loop never ends by itself
        raise AssertionError("the session timers ended")  # pragma: no cover
    finally:
        await cancel(task)
