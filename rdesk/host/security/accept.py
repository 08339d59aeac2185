"""Connection caps applied **at accept time**, before any TLS or websocket work (issue 20).

:class:`~rdesk.host.security.throttle.UnauthenticatedLimiter` only sees a connection once its
TLS and websocket handshakes are done, and each of those costs the host memory (asyncio's TLS
protocol allocates a 256 KiB read buffer per connection) and time. :class:`AcceptGate` counts
the connections still *in the handshake* — accepted, not yet handed to the websocket handler —
per source address and in total, and :class:`GatedSocket` is a listening socket whose
``accept()`` consults it: a connection over either cap is reset at once (``SO_LINGER`` 0),
without a TLS object ever being made for it. The gate's slot is given back when the websocket
handler takes the connection over (:meth:`AcceptGate.handed_over`) or when the socket closes,
whichever comes first; from then on the unauthenticated limiter and the session's deadlines
apply. asyncio's ``loop.create_server(sock=...)`` takes such a socket as it is.

**Why a TLS handshake failed** (plaintext, an old TLS version, a client refusing the
certificate with an alert): asyncio's TLS protocol logs the error only in debug mode, never
calls the exception handler, and the websocket server never sees the connection, so the
reason would be lost. :func:`record_tls_failures` makes a server context's TLS objects
:class:`_RecordingSSLObject`, whose failing ``do_handshake`` writes the OpenSSL reason
(``exc.reason``: ``HTTP_REQUEST``, ``UNSUPPORTED_PROTOCOL``, ``TLSV1_ALERT_UNKNOWN_CA``...)
onto the accepted socket the failing bytes came from. The correlation is exact, not a guess:
asyncio's selector transport reads a connection's bytes (``recv_into`` on the accepted
socket, which sets :data:`_reading`) and feeds them to that connection's TLS object, which
runs the handshake, in one synchronous call of that socket's own reader callback; and
:data:`_reading` is a context variable, set in the context of that callback only, so no other
connection's handshake can see it. A handshake that fails without this (a failure at the
first, dataless step; another transport) records nothing and keeps the old reason.
"""

from __future__ import annotations

import contextvars
import socket
import ssl
import struct
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["AcceptGate", "GatedSocket", "record_tls_failures"]

#: The accepted socket whose bytes the running reader callback just received (see above).
_reading: contextvars.ContextVar[_HeldSocket | None] = contextvars.ContextVar(
    "rdesk_reading_socket", default=None)


class AcceptGate:
    """How many connections each source has in the handshake; refuses over the caps.

    :param per_source: connections in the handshake one address may have.
    :param total: connections in the handshake over all addresses.
    :param on_refused: called with the source and its refusal count so far, for each refusal.
    """

    def __init__(self, per_source: int = 16, total: int = 128,
                 on_refused: Callable[[str, int], None] | None = None) -> None:
        self.per_source = per_source
        self.total = total
        self.on_refused = on_refused
        #: Called whenever a slot is given back (the host collects cycles after a burst).
        self.on_released: Callable[[], None] | None = None
        #: Called with the source, its count so far and the TLS failure's reason (``None``
        #: when none was recorded) when a connection closes before it finished a handshake:
        #: TLS failed (plaintext, garbage, old protocol, an alert) or no HTTP request came. A
        #: connection that sent a request is marked by :meth:`spoke`.
        self.on_unfinished: Callable[[str, int, str | None], None] | None = None
        self._unfinished_by: dict[str, int] = {}
        self._spoke: set[int] = set()
        self._counts: dict[str, int] = {}
        self._total = 0
        #: Connections refused at accept since the host started, and per source (bounded).
        self.refused = 0
        self._refused_by: dict[str, int] = {}
        #: fileno → the release of each connection still holding a slot.
        self._held: dict[int, Callable[[], None]] = {}

    def try_take(self, source: str) -> bool:
        """Take a slot for a connection from ``source``; ``False`` (and counted) if full."""
        count = self._counts.get(source, 0)
        if count >= self.per_source or self._total >= self.total:
            self.refused += 1
            seen = self._refused_by.pop(source, 0) + 1
            self._refused_by[source] = seen
            while len(self._refused_by) > 10_000:
                del self._refused_by[next(iter(self._refused_by))]
            if self.on_refused is not None:
                self.on_refused(source, seen)
            return False
        self._counts[source] = count + 1
        self._total += 1
        return True

    def give_back(self, source: str) -> None:
        count = self._counts.get(source, 0)
        if count <= 0:
            return
        if count == 1:
            del self._counts[source]
        else:
            self._counts[source] = count - 1
        self._total -= 1
        if self.on_released is not None:
            self.on_released()

    def hold(self, fileno: int, release: Callable[[], None]) -> None:
        self._held[fileno] = release

    def forget(self, fileno: int, release: Callable[[], None], source: str,
               tls_error: str | None = None) -> None:
        """The connection ``fileno`` of ``source`` closed (or was handed over); its TLS
        handshake failed for ``tls_error``, if that is known."""
        if self._held.get(fileno) is release:
            del self._held[fileno]
            if fileno in self._spoke:
                self._spoke.discard(fileno)
            else:  # closed holding its slot, before any HTTP request: a failed handshake
                seen = self._unfinished_by.pop(source, 0) + 1
                self._unfinished_by[source] = seen
                while len(self._unfinished_by) > 10_000:
                    del self._unfinished_by[next(iter(self._unfinished_by))]
                if self.on_unfinished is not None:
                    self.on_unfinished(source, seen, tls_error)

    def spoke(self, fileno: int) -> None:
        """Connection ``fileno`` completed TLS and sent an HTTP request."""
        if fileno in self._held:
            self._spoke.add(fileno)

    def handed_over(self, fileno: int) -> None:
        """The websocket handler took connection ``fileno``: its handshake slot is free."""
        self._spoke.add(fileno)
        release = self._held.get(fileno)
        if release is not None:
            release()

    def count(self, source: str | None = None) -> int:
        """Connections in the handshake from ``source`` (all when ``None``)."""
        return self._total if source is None else self._counts.get(source, 0)


class GatedSocket(socket.socket):
    """A listening socket whose ``accept()`` lets through only what ``gate`` allows.

    Refused connections are reset and never returned; ``accept()`` then tries the next one,
    raising ``BlockingIOError`` as usual once none is pending.
    """

    gate: AcceptGate

    @classmethod
    def listen_on(cls, host: str, port: int, gate: AcceptGate, backlog: int = 128
                  ) -> GatedSocket:
        """A bound, listening, non-blocking socket for ``host:port`` (the first address)."""
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = cls(family, kind, proto)
        try:
            sock.gate = gate
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def accept(self) -> tuple[socket.socket, object]:
        while True:
            fd, address = self._accept()  # type: ignore[attr-defined]
            source = str(address[0]) if isinstance(address, tuple) else "?"
            if self.gate.try_take(source):
                return _HeldSocket(self, fd, source), address
            conn = socket.socket(self.family, self.type, self.proto, fileno=fd)
            # Reset rather than close politely: no TIME_WAIT, no buffers kept for it.
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            finally:
                conn.close()


class _HeldSocket(socket.socket):
    """An accepted connection holding one of the gate's slots, given back exactly once:
    when handed over, or when the socket closes or is collected, whichever comes first."""

    def __init__(self, listener: GatedSocket, fd: int, source: str) -> None:
        super().__init__(listener.family, listener.type, listener.proto, fileno=fd)
        gate, fileno, done = listener.gate, fd, [False]
        #: Why its TLS handshake failed, once :class:`_RecordingSSLObject` saw it fail.
        self.tls_error: list[str | None] = [None]
        failure = self.tls_error

        def release() -> None:
            if not done[0]:
                done[0] = True
                gate.give_back(source)
                gate.forget(fileno, release, source, failure[0])

        gate.hold(fileno, release)
        # The finalizer holds ``release`` only, never the socket.
        self._release = weakref.finalize(self, release)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        _reading.set(self)
        return super().recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        _reading.set(self)
        return super().recv(bufsize, flags)

    def close(self) -> None:
        self._release()
        super().close()


class _RecordingSSLObject(ssl.SSLObject):
    """A TLS object whose failed handshake tells the socket it read from why (see above).

    ``read`` records too: a TLS 1.3 server has finished its side of the handshake before the
    client checks the certificate, so a client's refusal (its alert) arrives as the first
    read. The gate keeps a reason only for a connection that never sent an HTTP request."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except ssl.SSLError as exc:
            _record(exc)
            raise

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        try:
            return super().read(len, buffer)
        except ssl.SSLError as exc:
            _record(exc)
            raise


def _record(exc: ssl.SSLError) -> None:
    if isinstance(exc, (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLZeroReturnError)):
        return  # not a failure: more bytes needed, or a clean close
    sock = _reading.get()
    if sock is not None:
        sock.tls_error[0] = exc.reason or type(exc).__name__


def record_tls_failures(context: ssl.SSLContext) -> None:
    """Make ``context``'s TLS objects record why a handshake failed on the accepted socket
    (given by a :class:`GatedSocket`) it came from; returned to the gate's ``on_unfinished``."""
    context.sslobject_class = _RecordingSSLObject
