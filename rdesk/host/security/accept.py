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
"""

from __future__ import annotations

import socket
import struct
import weakref
from collections.abc import Callable

__all__ = ["AcceptGate", "GatedSocket"]


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
        #: Called with the source and its count so far when a connection closes before it
        #: finished a handshake: TLS failed (plaintext, garbage, old protocol) or no HTTP
        #: request came. A connection that sent a request is marked by :meth:`spoke`.
        self.on_unfinished: Callable[[str, int], None] | None = None
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

    def forget(self, fileno: int, release: Callable[[], None], source: str) -> None:
        """The connection ``fileno`` of ``source`` closed (or was handed over)."""
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
                    self.on_unfinished(source, seen)

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

        def release() -> None:
            if not done[0]:
                done[0] = True
                gate.give_back(source)
                gate.forget(fileno, release, source)

        gate.hold(fileno, release)
        # The finalizer holds ``release`` only, never the socket.
        self._release = weakref.finalize(self, release)

    def close(self) -> None:
        self._release()
        super().close()
