"""Splicing two plain TCP sockets: bytes in on one leave on the other, in order, both ways.

The relay's raw lane hands over two connected TCP sockets whose bytes are a TLS session
between viewer and host; the relay only copies them. :func:`open_splicer` gives the cheapest
copier this machine allows (``auto``, the relay's default): the **kernel** one
(:mod:`rdesk.relay.sockmap`: a BPF sockhash whose verdict program sends what arrives on one
socket out of the other, without waking this process per message) or, when BPF is not
allowed here, the **userspace** one below (asyncio readers, one ``recv_into`` and one ``send``
per read), with the one-line reason. Either can be forced (``--splicer kernel|userspace``).

The contract both keep (:class:`Splicer`):

- ``join(a, b, first_to_a=...)`` takes ownership of two connected TCP sockets with nothing
  pending in either receive queue, sends ``first_to_a`` to ``a`` once both are joined, then
  copies both ways until the pair ends, and returns a :class:`RawSpliceResult`.
- **No loss at the end**: when one side shuts its sending half (FIN), everything it sent is
  delivered to the other before that one is shut for writing too (a half-close passed on);
  the other direction keeps flowing until that side ends as well or ``close_timeout``
  passes. Then both sockets are closed.
- A reset (or any socket error) on one side closes both at once.
- **Bounded memory**: what a non-reading peer is not taking stays in the sender's TCP window
  (the userspace splicer stops reading; the kernel one's credit passes a direction back to
  a userspace copier: docs/relay.md).
- **Dead peers**: TCP keepalive (:class:`Keepalive`) on both sockets ends a pair whose peer
  vanished (a NAT that forgot it) within ``idle + interval * count`` seconds.
- Cancelling ``join`` closes both sockets and re-raises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import typing
from collections.abc import Callable

from rdesk.relay.config import SPLICERS

__all__ = [
    "SPLICERS", "Copier", "KernelSpliceUnavailable", "Keepalive", "RawSpliceResult", "Splicer",
    "UserspaceSplicer", "open_splicer", "prepare", "turned_away",
]

#: Bytes one read takes (shared by every pair: callbacks never interleave).
READ_CHUNK = 256 * 1024
#: Seconds a pair waits, after one side ended, for the other side to end too.
CLOSE_TIMEOUT = 10.0


class KernelSpliceUnavailable(Exception):
    """The kernel splicer cannot be set up here; ``str()`` is the one-line reason."""


@dataclasses.dataclass(frozen=True)
class RawSpliceResult:
    """How a pair ended: payload bytes carried each way and the one-line reason."""

    a_to_b: int
    b_to_a: int
    reason: str  # "a closed", "b reset", "cancelled", ...


@dataclasses.dataclass(frozen=True)
class Keepalive:
    """TCP keepalive on each spliced socket: probes after ``idle`` s of silence, every
    ``interval`` s, ``count`` unanswered ones end the connection."""

    idle: int = 30
    interval: int = 10
    count: int = 3


class Splicer(typing.Protocol):
    """Joins pairs of TCP sockets (see the module's contract)."""

    kind: str  # "kernel" or "userspace"

    async def join(self, a: socket.socket, b: socket.socket, *,
                   first_to_a: bytes = b"") -> RawSpliceResult: ...

    def close(self) -> None:
        """Free what the splicer holds (the kernel's map and program); idempotent. Pairs
        still joined are ended."""


def prepare(sock: socket.socket, keepalive: Keepalive) -> None:
    """Make ``sock`` non-blocking, with TCP keepalive as ``keepalive`` says."""
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive.idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, keepalive.interval)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, keepalive.count)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def turned_away(a: socket.socket, b: socket.socket, closed: bool, pairs: int,
                max_pairs: int) -> RawSpliceResult | None:
    """The result of a join a splicer refuses — ``closed``, or already at ``max_pairs`` — with
    both sockets closed (the contract: a joined pair's sockets are the splicer's); ``None``
    when it may take the pair."""
    if not closed and pairs < max_pairs:
        return None
    a.close()
    b.close()
    return RawSpliceResult(0, 0, "splicer closed" if closed else "splicer full")


class Copier:
    """Bytes from ``src`` to ``dst`` on ``loop``: one ``recv_into`` of ``view`` and one ``send``
    per read; what ``dst`` did not take is held (one read at most) and ``src`` is not read again
    until it went out, so a peer that does not read stalls the sender's TCP window.

    ``on_eof()`` is called once ``src`` sent its FIN (it is no longer read); ``on_error(line)``
    when either socket fails, with a one-line reason naming the side (``names``: src, dst).
    Shared by the userspace splicer and the kernel splicer's hand-over (:mod:`.sockmap`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, src: socket.socket, dst: socket.socket,
                 names: tuple[str, str], view: memoryview, on_eof: Callable[[], None],
                 on_error: Callable[[str], None]) -> None:
        self.loop, self.src, self.dst, self.names, self.view = loop, src, dst, names, view
        self.on_eof, self.on_error = on_eof, on_error
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.pending = b""
        self.carried = 0

    def start(self, first: bytes = b"") -> None:
        """Send ``first`` to ``dst``, then copy."""
        self.pending = first
        if first:
            self._write()
        else:
            self.loop.add_reader(self.src_fd, self._read)

    def _read(self) -> None:
        view = self.view
        try:
            n = self.src.recv_into(view)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.on_error(f"{self.names[0]} {failed_word(exc)}")
            return
        if n == 0:
            self.loop.remove_reader(self.src_fd)
            self.on_eof()
            return
        self.carried += n
        try:
            sent = self.dst.send(view[:n])
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.on_error(f"{self.names[1]} {failed_word(exc)}")
            return
        if sent < n:
            self.pending = bytes(view[sent:n])
            self.loop.remove_reader(self.src_fd)
            self.loop.add_writer(self.dst_fd, self._write)

    def _write(self) -> None:
        try:
            sent = self.dst.send(self.pending)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.on_error(f"{self.names[1]} {failed_word(exc)}")
            return
        self.pending = self.pending[sent:]
        if self.pending:
            self.loop.remove_reader(self.src_fd)
            self.loop.add_writer(self.dst_fd, self._write)
        else:
            self.loop.remove_writer(self.dst_fd)
            self.loop.add_reader(self.src_fd, self._read)

    def stop(self) -> None:
        self.loop.remove_reader(self.src_fd)
        self.loop.remove_writer(self.dst_fd)


class _Direction(Copier):
    """One direction of a userspace pair: at ``src``'s FIN, ``dst`` is shut for writing."""

    def __init__(self, pair: _Pair, src: socket.socket, dst: socket.socket,
                 names: tuple[str, str]) -> None:
        super().__init__(pair.loop, src, dst, names, pair.splicer.view, self._end, pair.fail)
        self.pair = pair
        self.ended = False  # src's end passed on to dst

    def _end(self) -> None:
        try:
            self.dst.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.pair.fail(f"{self.names[1]} {failed_word(exc)}")
            return
        self.ended = True
        self.pair.ended(self.names[0])


def failed_word(exc: OSError) -> str:
    """One word or two for how a socket failed."""
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "closed"
    return f"failed ({exc.strerror or exc})"


class _Pair:
    """One joined pair of the userspace splicer."""

    def __init__(self, splicer: UserspaceSplicer, a: socket.socket, b: socket.socket) -> None:
        self.splicer, self.a, self.b = splicer, a, b
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[str] = self.loop.create_future()
        self.ab = _Direction(self, a, b, ("a", "b"))
        self.ba = _Direction(self, b, a, ("b", "a"))
        self.reason: str | None = None
        self.timer: asyncio.TimerHandle | None = None

    def ended(self, name: str) -> None:
        """One side ended cleanly; the pair ends when both did, or after the close timeout."""
        if self.reason is None:
            self.reason = f"{name} closed"
        if self.ab.ended and self.ba.ended:
            self.finish(self.reason)
        elif self.timer is None:
            self.timer = self.loop.call_later(self.splicer.close_timeout, self.finish,
                                              self.reason)

    def fail(self, reason: str) -> None:
        self.finish(self.reason if self.reason is not None else reason)

    def finish(self, reason: str) -> None:
        """Stop both directions and close both sockets (once)."""
        if self.done.done():
            return
        if self.timer is not None:
            self.timer.cancel()
        self.ab.stop()
        self.ba.stop()
        self.a.close()
        self.b.close()
        self.done.set_result(reason)


class UserspaceSplicer:
    """The asyncio splicer: one ``recv_into`` and one ``send`` per read, in the event loop's
    thread. Holds at most one read per direction of a pair whose receiver is slow."""

    kind = "userspace"

    def __init__(self, *, max_pairs: int = 4096, keepalive: Keepalive | None = None,
                 close_timeout: float = CLOSE_TIMEOUT) -> None:
        self.max_pairs = max_pairs
        self.keepalive = keepalive or Keepalive()
        self.close_timeout = close_timeout
        self.view = memoryview(bytearray(READ_CHUNK))
        self.pairs: set[_Pair] = set()
        self.closed = False

    async def join(self, a: socket.socket, b: socket.socket, *,
                   first_to_a: bytes = b"") -> RawSpliceResult:
        """Splice ``a`` and ``b`` until the pair ends (the module's contract)."""
        refused = turned_away(a, b, self.closed, len(self.pairs), self.max_pairs)
        if refused is not None:
            return refused
        pair = _Pair(self, a, b)
        try:
            prepare(a, self.keepalive)
            prepare(b, self.keepalive)
        except OSError as exc:
            pair.finish(f"socket refused: {exc.strerror or exc}")
            return RawSpliceResult(0, 0, pair.done.result())
        self.pairs.add(pair)
        try:
            pair.ab.start(b"")
            pair.ba.start(first_to_a)
            reason = await asyncio.shield(pair.done)
        except asyncio.CancelledError:
            pair.finish("cancelled")
            raise
        finally:
            self.pairs.discard(pair)
        return RawSpliceResult(pair.ab.carried, pair.ba.carried, reason)

    def close(self) -> None:
        """End every pair still joined ("splicer closed"); idempotent."""
        self.closed = True
        for pair in list(self.pairs):
            pair.finish("splicer closed")


def open_splicer(kind: str = "auto", *, max_pairs: int = 4096,
                 keepalive: Keepalive | None = None, close_timeout: float = CLOSE_TIMEOUT,
                 kernel: Callable[..., Splicer] | None = None) -> tuple[Splicer, str | None]:
    """The splicer ``kind`` (one of :data:`SPLICERS`) asks for, and for ``auto`` the one-line
    reason the kernel one could not be set up (``None`` when it was, or was not tried), e.g.
    ``"bpf map create: Operation not permitted (needs CAP_BPF and CAP_NET_ADMIN)"``.

    ``kernel`` makes the kernel splicer (default :class:`~rdesk.relay.sockmap.KernelSplicer`;
    a test passes one that refuses). :raises KernelSpliceUnavailable: when ``kind`` is
    ``kernel`` and it cannot be set up. :raises ValueError: for an unknown ``kind``."""
    if kind not in SPLICERS:
        raise ValueError(f"unknown splicer {kind!r} (one of {', '.join(SPLICERS)})")
    reason: str | None = None
    if kind != "userspace":
        if kernel is None:
            from rdesk.relay.sockmap import KernelSplicer  # only then: it loads ctypes, libc

            kernel = KernelSplicer
        try:
            return kernel(max_pairs=max_pairs, keepalive=keepalive,
                          close_timeout=close_timeout), None
        except KernelSpliceUnavailable as exc:
            if kind == "kernel":
                raise
            reason = str(exc)
    return UserspaceSplicer(max_pairs=max_pairs, keepalive=keepalive,
                            close_timeout=close_timeout), reason
