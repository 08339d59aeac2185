"""The viewer's I/O edge: connect, pin the host key, authenticate, follow the screen.

Every face (the desktop window, the browser page's Python twin, the CLI verbs) sits on
:func:`connect` and :class:`Connection`. The library never prompts: a first-contact host key
raises :class:`~rdesk.client.known_hosts.UnknownHostKey` and a changed one
:class:`~rdesk.client.known_hosts.HostKeyMismatch` — both **before any credential is sent** —
and the password is asked of a callable only after the host key was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
import urllib.parse
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rdesk.client.framebuffer import Framebuffer
from rdesk.client.known_hosts import (
    HostKeyMismatch,
    KnownHosts,
    normalize_fingerprint,
    verify_host_key,
)
from rdesk.client.tls import client_ssl_context
from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode, ProtocolError
from rdesk.protocol.fingerprint import fingerprint
from rdesk.protocol.messages import (
    NOBODY,
    PROTOCOL_VERSION,
    Ack,
    AnswerControl,
    Auth,
    Close,
    Control,
    ControlRequest,
    Hello,
    InputAck,
    Key,
    Notice,
    Peer,
    Ping,
    Pointer,
    Pong,
    Prefs,
    Refresh,
    ReleaseControl,
    RequestControl,
    Screen,
    Sync,
    Update,
    Welcome,
    Wheel,
)
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role

__all__ = [
    "DEFAULT_PORT",
    "WS_PATH",
    "AuthenticationFailed",
    "ConnectError",
    "Connection",
    "ConnectionLost",
    "HostAddress",
    "connect",
    "parse_url",
]

DEFAULT_PORT = 7900
#: Seconds to wait for a host whose local user must accept the connection.
CONSENT_WAIT = 120.0
WS_PATH = "/rdesk"


class ConnectError(Exception):
    """The connection could not be made or was refused; ``str()`` is one line."""


class AuthenticationFailed(ConnectError):
    """The host refused the credential."""


class ConnectionLost(ConnectError):
    """An established connection ended; :attr:`code` says why."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class HostAddress:
    """Where a host listens: from ``wss://HOST[:PORT][/PATH]``."""

    host: str
    port: int
    path: str = WS_PATH

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"wss://{host}:{self.port}{self.path}"

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_url(url: str) -> HostAddress:
    """Parse a host URL; ``HOST[:PORT]`` alone means ``wss://HOST:PORT``.

    Raises :class:`ConnectError` for anything but ``wss`` (rdesk always uses TLS).
    """
    if "://" not in url:
        url = "wss://" + url
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConnectError(f"invalid host URL {url!r}: {exc}") from None
    if parts.scheme not in ("wss", "https"):
        raise ConnectError(f"rdesk only connects over TLS: use wss://, not {parts.scheme}://")
    if not parts.hostname:
        raise ConnectError(f"invalid host URL {url!r}: no host name")
    path = parts.path if parts.path not in ("", "/") else WS_PATH
    return HostAddress(parts.hostname, port, path)


PasswordSource = Callable[[], str]


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
) -> Connection:
    """Connect to a host, verify its key, authenticate, and start following its screen.

    ``known_hosts`` may be ``None`` only together with ``pinned``. ``password`` may be a
    callable, asked only once the host key has been accepted. Raises :class:`ConnectError`
    (unreachable, not rdesk, wrong version, refused), :class:`AuthenticationFailed`,
    :class:`~rdesk.client.known_hosts.HostKeyMismatch` or
    :class:`~rdesk.client.known_hosts.UnknownHostKey`.

    ``ssl_context`` replaces the default :func:`~rdesk.client.tls.client_ssl_context` (e.g.
    one made with ``cert=``/``key=`` to present a client certificate); it must not verify the
    host by CA unless a CA file was given: the host is pinned by fingerprint here.
    """
    address = url if isinstance(url, HostAddress) else parse_url(url)
    if known_hosts is None and pinned is None:
        raise ValueError("connect() needs known_hosts or a pinned fingerprint")
    ws = await _open(address, timeout, ssl_context)
    try:
        ssl_object = ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            raise ConnectError(f"{address}: the host presented no certificate")
        offered = fingerprint(der)
        # Raises on a changed or unknown key: nothing has been sent yet.
        if known_hosts is None:
            assert pinned is not None
            if normalize_fingerprint(pinned) != offered:
                raise HostKeyMismatch(address.host, address.port, pinned, offered, pinned=True)
        else:
            verify_host_key(
                known_hosts, address.host, address.port, offered, pinned=pinned,
                accept_new=accept_new,
            )
        session = Session(Role.VIEWER, time.monotonic(), ping_interval=None)
        hello = session.receive(await _recv(ws, address, timeout), time.monotonic())
        if isinstance(hello, Close):
            raise ConnectError(f"{address} refused the connection: {hello.reason}")
        assert isinstance(hello, Hello)
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
            # The host asks its local user to accept us: wait as long as that may take.
            reply = session.receive(
                await _recv(ws, address, max(timeout, CONSENT_WAIT)), time.monotonic()
            )
        if isinstance(reply, Close):
            if reply.code == CloseCode.AUTH_FAILED:
                raise AuthenticationFailed(f"{address}: authentication failed ({reply.reason})")
            raise ConnectError(f"{address} refused the connection: {reply.reason}")
        assert isinstance(reply, Welcome)
    except ProtocolError as exc:
        await _abort(ws, None, exc.code, exc.reason)
        raise ConnectError(f"{address}: {exc.reason}") from None
    except BaseException:
        await _abort(ws, None, CloseCode.NORMAL, "")
        raise
    connection = Connection(ws, session, address, reply, offered)
    connection.start()
    return connection


async def _open(
    address: HostAddress, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> ClientConnection:
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
            ping_interval=20,
            ping_timeout=20,
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


async def _abort(ws: ClientConnection, session: Session | None, code: int, reason: str) -> None:
    frame = session.close_frame(code, reason) if session is not None else None
    with contextlib.suppress(Exception):
        if frame is not None:
            await asyncio.wait_for(ws.send(frame), 2)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code, reason[:120]), 5)


@dataclasses.dataclass
class Stats:
    """Counters a face may show (the stats overlay, ``rdesk watch``)."""

    updates: int = 0
    rects: int = 0
    bytes: int = 0
    #: Host timestamp (µs) of the last update applied.
    last_update_host_us: int = 0
    #: Round-trip time in seconds of the last answered :meth:`Connection.ping`, if any.
    rtt: float | None = None
    #: Smallest ping round trip seen (the link's base RTT, for ``rdesk watch``).
    min_rtt: float | None = None
    #: The last update applied (``rdesk watch`` infers quality and scale from it).
    last_update: Update | None = None


class Connection:
    """An authenticated viewer connection that keeps :attr:`framebuffer` current.

    A background task applies updates and acknowledges each one after painting it. Faces
    register callbacks with :meth:`on_update`; scripts await :meth:`wait_exact`. Input methods
    send at once; :meth:`sync` waits until the host confirms everything before it.
    """

    def __init__(
        self,
        ws: ClientConnection,
        session: Session,
        address: HostAddress,
        welcome: Welcome,
        host_fingerprint: str,
    ) -> None:
        self.ws = ws
        self.session = session
        self.address = address
        self.role = welcome.role
        self.viewer_id = welcome.viewer_id
        self.host_name = welcome.name
        self.host_fingerprint = host_fingerprint
        self.framebuffer = Framebuffer(welcome.width, welcome.height)
        self.stats = Stats()
        self._changed = asyncio.Condition()
        self._callbacks: list[Callable[[list[tuple[int, int, int, int]]], None]] = []
        self._syncs: dict[int, asyncio.Future[InputAck]] = {}
        self._sync_id = 0
        self._pings: dict[int, float] = {}
        self._ping_id = 0
        self._task: asyncio.Task[None] | None = None
        #: Other viewers connected to the host, by id.
        self.peers: dict[int, Peer] = {}
        #: Who holds control: a viewer id, ``NOBODY`` or ``LOCAL_USER``.
        self.holder = NOBODY
        #: Control requests from other viewers this viewer may answer (it holds control).
        self.control_requests: dict[int, ControlRequest] = {}
        #: Lines the host sent for the user (most recent last, bounded).
        self.notices: list[str] = []
        #: Set when the connection ends: the reason, as an exception.
        self.closed: asyncio.Future[ConnectionLost] = asyncio.get_running_loop().create_future()

    @property
    def width(self) -> int:
        return self.framebuffer.size[0]

    @property
    def height(self) -> int:
        return self.framebuffer.size[1]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rdesk-viewer-receive")

    def on_update(self, callback: Callable[[list[tuple[int, int, int, int]]], None]) -> None:
        """Call ``callback(painted_rects)`` after each update is applied (an empty list after a
        resize, meaning "everything")."""
        self._callbacks.append(callback)

    # --- receiving -----------------------------------------------------------------------------

    async def _run(self) -> None:
        lost: ConnectionLost
        try:
            async for data in self.ws:
                await self._handle(data)
            lost = self._lost_from_ws()
        except ConnectionClosed:
            lost = self._lost_from_ws()
        except ProtocolError as exc:
            await _abort(self.ws, self.session, exc.code, exc.reason)
            lost = ConnectionLost(f"{self.address}: {exc.reason}", exc.code)
        except _HostClosed as exc:
            lost = exc.lost
        finally:
            for future in self._syncs.values():
                future.cancel()
        if not self.closed.done():
            self.closed.set_result(lost)
        async with self._changed:
            self._changed.notify_all()

    def _lost_from_ws(self) -> ConnectionLost:
        rcvd = self.ws.protocol.close_rcvd
        if rcvd is None:
            return ConnectionLost(f"{self.address}: connection lost")
        reason = rcvd.reason or "closed"
        return ConnectionLost(f"{self.address} closed the connection: {reason}", rcvd.code)

    async def _handle(self, data: str | bytes) -> None:
        message = self.session.receive(data, time.monotonic())
        if isinstance(message, Update):
            painted = self.framebuffer.apply(message)
            await self.ws.send(self.session.send(Ack(message.seq), time.monotonic()))
            self.stats.updates += 1
            self.stats.rects += len(message.rects)
            self.stats.bytes += len(data)
            self.stats.last_update_host_us = message.timestamp_us
            self.stats.last_update = message
            self._notify(painted)
        elif isinstance(message, Screen):
            self.framebuffer.resize(message.width, message.height)
            self._notify([])
        elif isinstance(message, Ping):
            await self.ws.send(self.session.send(Pong(message.id), time.monotonic()))
        elif isinstance(message, Pong):
            sent = self._pings.pop(message.id, None)
            if sent is not None:
                self.stats.rtt = time.monotonic() - sent
                if self.stats.min_rtt is None or self.stats.rtt < self.stats.min_rtt:
                    self.stats.min_rtt = self.stats.rtt
        elif isinstance(message, InputAck):
            future = self._syncs.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, Peer):
            if message.present and message.id != self.viewer_id:
                self.peers[message.id] = message
            else:
                self.peers.pop(message.id, None)
                self.control_requests.pop(message.id, None)
        elif isinstance(message, Control):
            self.holder = message.holder
            if message.holder != self.viewer_id:
                self.control_requests.clear()
        elif isinstance(message, ControlRequest):
            self.control_requests[message.id] = message
        elif isinstance(message, Notice):
            self.notices = [*self.notices[-19:], message.text]
        elif isinstance(message, Close):
            raise _HostClosed(
                ConnectionLost(
                    f"{self.address} closed the connection: {message.reason}", message.code
                )
            )
        async with self._changed:
            self._changed.notify_all()

    def _notify(self, painted: list[tuple[int, int, int, int]]) -> None:
        for callback in self._callbacks:
            callback(painted)

    async def wait_exact(self, timeout: float) -> None:
        """Wait until the framebuffer is pixel-exact with the host's screen.

        Raises :class:`ConnectionLost` if the connection ends first, ``TimeoutError`` after
        ``timeout`` seconds.
        """

        async def _wait() -> None:
            async with self._changed:
                while not self.framebuffer.exact:
                    if self.closed.done():
                        raise self.closed.result()
                    await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def wait_update(self, timeout: float) -> None:
        """Wait for the next update (or screen change) to be applied."""
        count = self.stats.updates

        async def _wait() -> None:
            async with self._changed:
                while self.stats.updates == count:
                    if self.closed.done():
                        raise self.closed.result()
                    await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    # --- sending -------------------------------------------------------------------------------

    async def _send(
        self,
        message: Pointer | Wheel | Key | Sync | Refresh | RequestControl | ReleaseControl
        | AnswerControl | Ping | Prefs,
    ) -> None:
        if self.closed.done():
            raise self.closed.result()
        try:
            await self.ws.send(self.session.send(message, time.monotonic()))
        except ConnectionClosed:
            raise self._lost_from_ws() from None

    async def pointer(self, x: int, y: int, buttons: int = 0) -> None:
        """Move the pointer to host pixel (x, y) with ``buttons`` (bit 0 = left) held."""
        await self._send(Pointer(x, y, buttons))

    async def wheel(self, x: int, y: int, dx: int = 0, dy: int = 0) -> None:
        """Scroll ``dy`` detents down (negative: up) and ``dx`` right at (x, y)."""
        await self._send(Wheel(x, y, dx, dy))

    async def key(self, keysym: int, down: bool) -> None:
        """Press (``down``) or release an X11 keysym."""
        await self._send(Key(keysym, down))

    @property
    def has_control(self) -> bool:
        """Whether this viewer holds control (as the host last said)."""
        return self.holder == self.viewer_id

    async def request_control(self) -> None:
        """Ask for control; the holder or the host's user answers (watch :attr:`holder`)."""
        await self._send(RequestControl())

    async def release_control(self) -> None:
        """Give control up."""
        await self._send(ReleaseControl())

    async def answer_control(self, viewer_id: int, grant: bool) -> None:
        """As the holder, grant or refuse viewer ``viewer_id``'s request."""
        self.control_requests.pop(viewer_id, None)
        await self._send(AnswerControl(viewer_id, grant))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds after some message; ``TimeoutError`` otherwise."""

        async def _wait() -> None:
            async with self._changed:
                while not predicate():
                    if self.closed.done():
                        raise self.closed.result()
                    await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def ping(self) -> None:
        """Send a ping; its pong sets :attr:`Stats.rtt` (the round-trip time)."""
        self._ping_id = (self._ping_id + 1) & 0xFFFFFFFF
        # Keep only recent pings: an unanswered one must not grow this forever.
        if len(self._pings) >= 8:
            self._pings.pop(next(iter(self._pings)))
        self._pings[self._ping_id] = time.monotonic()
        await self._send(Ping(self._ping_id))

    async def prefs(self, quality: int = 0, max_fps: int = 0, max_bandwidth: int = 0) -> None:
        """Cap this viewer's JPEG quality, update rate and bits/s; 0 leaves one automatic."""
        await self._send(Prefs(quality, max_fps, max_bandwidth))

    async def refresh(self) -> None:
        """Ask the host for the whole screen again."""
        await self._send(Refresh())

    async def sync(self, timeout: float = 10.0) -> InputAck:
        """Wait until the host has handled every input sent before; return its answer."""
        self._sync_id = (self._sync_id + 1) & 0xFFFFFFFF
        future: asyncio.Future[InputAck] = asyncio.get_running_loop().create_future()
        self._syncs[self._sync_id] = future
        await self._send(Sync(self._sync_id))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.CancelledError:
            if self.closed.done():
                raise self.closed.result() from None
            raise

    async def close(self) -> None:
        """Close cleanly (idempotent) and wait for the receive task to end."""
        await _abort(self.ws, self.session, CloseCode.NORMAL, "viewer closed")
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _HostClosed(Exception):
    def __init__(self, lost: ConnectionLost) -> None:
        super().__init__(str(lost))
        self.lost = lost

