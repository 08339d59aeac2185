"""The kernel splicer: pairs of TCP sockets joined in a BPF sockhash (:mod:`rdesk.relay.bpf`).

Joining ``a`` and ``b`` stores ``b`` under ``a``'s cookie and ``a`` under ``b``'s, so what
arrives on either is sent out of the other: the verdict program, run in the softirq that
received a segment, queues it to the peer's psock, whose kernel worker (a ``kworker``) sends
it; this process is not woken per message. It only watches for the ends, in an epoll set of
its own registered for ``EPOLLRDHUP`` (a data wakeup is filtered out by that mask, so it costs
no wakeup either), and for the program's credit signals.

**No loss at the end**: a socket's FIN shows as ``EPOLLRDHUP``. Everything the kernel
received on it must be out of the peer before the peer is shut for writing or unlinked (an
unlink purges what the kernel still queues for that socket), so the pair waits until the
peer's ``tcpi_bytes_acked`` caught up with the closed side's ``tcpi_bytes_received`` (both
counted from the join), then shuts the peer's sending half; the pair ends when both sides
did, or ``close_timeout`` after the first.

**The bound, and backpressure**: the kernel queues what it redirects to a socket whose
send buffer is full without a limit of its own, and the sender's window stays open
(measured: 300 MB accepted from a sender whose receiver never read). So each direction has a
*credit* the program keeps itself: it counts what it redirected from a socket and reads the
peer's own ``bytes_acked`` (``struct tcp_sock``, through the kernel's BTF), and once the next
segment would leave more than ``max_queued`` bytes redirected and not acknowledged by the
peer's peer, it passes that segment (and everything after, for good) to the socket's own
receive queue, where it is charged to that socket and closes the sender's window, and
*signals* the relay (a ring buffer whose descriptor is in this loop:
:class:`~rdesk.relay.bpf.Signals`). The relay then hands that direction to rawsplice's
userspace :class:`~rdesk.relay.rawsplice.Copier` as soon as the kernel's queue for the peer
drained — sending earlier would overtake it. So the kernel holds at most ``max_queued`` per
direction, a slow reader slows its sender, a direction whose reader keeps up stays in the
kernel however fast it is, and no timer runs: the relay is woken by a pair only at its ends
and at most once by each direction that ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import select
import socket
import struct
import termios

from rdesk.relay.bpf import BpfError, SockHash, socket_cookie
from rdesk.relay.rawsplice import (
    CLOSE_TIMEOUT,
    READ_CHUNK,
    Copier,
    Keepalive,
    KernelSpliceUnavailable,
    RawSpliceResult,
    prepare,
    turned_away,
)

__all__ = ["KernelSpliceUnavailable", "KernelSplicer"]

#: ``struct tcp_info`` (linux/tcp.h, append-only uapi): its size up to the fields read here.
_TCP_INFO_LEN = 136
_BYTES_ACKED, _BYTES_RECEIVED = 120, 128
#: Seconds between two checks of a closing pair's drain (it ends within close_timeout).
_DRAIN_POLL = 0.01
#: Bytes one direction of a pair may have redirected and not yet acknowledged by the peer's
#: peer: past it, that direction is handed to the userspace copier (the credit's size).
MAX_QUEUED = 4 * 1024 * 1024


def _counters(sock: socket.socket) -> tuple[int, int]:
    """(bytes acknowledged by the peer, bytes received) of ``sock`` since it connected."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    acked, received = struct.unpack_from("<QQ", raw, _BYTES_ACKED)
    return acked, received


def _pending(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive queue."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


def _nothing() -> None:
    """A copier's end when the pair itself watches for the FIN."""


class _Pair:
    """One joined pair of the kernel splicer."""

    def __init__(self, splicer: KernelSplicer, a: socket.socket, b: socket.socket,
                 first_to_a: bytes) -> None:
        self.splicer, self.socks = splicer, (a, b)
        self.fds = (a.fileno(), b.fileno())
        self.keys = (socket_cookie(a), socket_cookie(b))
        (acked_a, received_a), base_b = _counters(a), _counters(b)
        # what a's peer acknowledges of first_to_a is not b's bytes
        self.base = ((acked_a + len(first_to_a), received_a), base_b)
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[str] = self.loop.create_future()
        self.eof = [False, False]  # side i sent its FIN
        self.shut = [False, False]  # side i's end passed on: the other side shut for writing
        self.reason: str | None = None
        self.started_end = 0.0
        self.carried = (0, 0)
        self.stored = 0  # map entries made
        self.redirected: list[int | None] = [None, None]  # final once side i is passed back
        self.copiers: list[Copier | None] = [None, None]

    def moved(self, i: int) -> tuple[int, int]:
        """(payload bytes received on side i, bytes of it acknowledged by the other side's
        peer). TCP counts a FIN as one byte in ``tcpi_bytes_received``: not payload."""
        acked = _counters(self.socks[1 - i])[0] - self.base[1 - i][0]
        received = _counters(self.socks[i])[1] - self.base[i][1] - self.eof[i]
        return received, acked

    def event(self, i: int, mask: int) -> None:
        """Epoll said side i hung up or failed."""
        if self.eof[i]:
            return
        sock = self.socks[i]
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err or mask & select.EPOLLERR:
            word = "reset" if err in (0, errno.ECONNRESET) else f"failed ({os.strerror(err)})"
            self.finish(self.reason or f"{'ab'[i]} {word}")
            return
        self.eof[i] = True
        # no more events from it (a hangup stays reported): the drain and its timeout follow
        self.splicer.epoll.unregister(self.fds[i])
        if self.reason is None:
            self.reason = f"{'ab'[i]} closed"
            self.started_end = self.loop.time()
        self.drain()

    def drain(self) -> None:
        """Pass each side's end on once all it sent went out; end when both did."""
        if self.done.done():
            return
        now = self.loop.time()
        try:
            for i in (0, 1):
                if self.eof[i] and not self.shut[i]:
                    received, acked = self.moved(i)
                    if acked >= received:
                        self.socks[1 - i].shutdown(socket.SHUT_WR)
                        self.shut[i] = True
        except OSError as exc:
            self.finish(self.reason or f"failed ({exc.strerror or exc})")
            return
        if all(self.shut) or now - self.started_end > self.splicer.close_timeout:
            self.finish(self.reason or "closed")
        elif any(e and not s for e, s in zip(self.eof, self.shut, strict=True)):
            self.loop.call_later(_DRAIN_POLL, self.drain)
        else:  # waiting for the other side's FIN (or the close timeout)
            self.loop.call_at(self.started_end + self.splicer.close_timeout + 0.001,
                                      self.drain)

    def signalled(self, i: int) -> None:
        """The program signalled side i: it ran out of credit and passes; hand it over."""
        if self.redirected[i] is not None or self.done.done():
            return
        redirected, passing = self.splicer.map.usage(self.keys[i])
        if passing:
            self.redirected[i] = redirected
            self.hand_over(i)

    def hand_over(self, i: int) -> None:
        """Copy side i's bytes in userspace once the kernel's queue for the peer drained
        (what was redirected is acknowledged): sending earlier would overtake it."""
        if self.done.done():
            return
        redirected = self.redirected[i]
        assert redirected is not None
        try:
            acked = self.moved(i)[1]
        except OSError:
            return  # the pair is ending; its own events say how
        if acked < redirected:
            self.loop.call_later(_DRAIN_POLL, self.hand_over, i)
            return
        copier = Copier(self.loop, self.socks[i], self.socks[1 - i], ("ab"[i], "ab"[1 - i]),
                        self.splicer.view, on_eof=_nothing,  # the pair's drain passes the FIN on
                        on_error=lambda line: self.finish(self.reason or line))
        self.copiers[i] = copier
        copier.start()

    def finish(self, reason: str) -> None:
        """Unlink both sockets, close them, and report ``reason`` (once)."""
        if self.done.done():
            return
        with contextlib.suppress(OSError):
            self.carried = (self.moved(0)[0], self.moved(1)[0])
        for copier in self.copiers:
            if copier is not None:
                copier.stop()
        splicer = self.splicer
        for fd in self.fds:
            with contextlib.suppress(OSError, ValueError):
                splicer.epoll.unregister(fd)
            splicer.by_fd.pop(fd, None)
        for key in self.keys:
            splicer.by_key.pop(key, None)
        for key in self.keys[: self.stored]:
            with contextlib.suppress(BpfError):  # closing the socket unlinks it too
                splicer.map.delete(key)
        for sock in self.socks:
            sock.close()
        self.done.set_result(reason)


class KernelSplicer:
    """Splices pairs in the kernel (the module docstring); one sockhash of ``2 * max_pairs``.

    :raises KernelSpliceUnavailable: when BPF is not allowed or not supported here.
    """

    kind = "kernel"

    def __init__(self, *, max_pairs: int = 4096, keepalive: Keepalive | None = None,
                 close_timeout: float = CLOSE_TIMEOUT, max_queued: int = MAX_QUEUED) -> None:
        try:
            self.map = SockHash(2 * max_pairs)
        except BpfError as exc:
            hint = " (needs CAP_BPF and CAP_NET_ADMIN)" if exc.errno == errno.EPERM else ""
            raise KernelSpliceUnavailable(f"{exc}{hint}") from None
        self.max_pairs, self.keepalive = max_pairs, keepalive or Keepalive()
        self.close_timeout, self.max_queued = close_timeout, max_queued
        self.epoll = select.epoll()
        self.view = memoryview(bytearray(READ_CHUNK))  # the copiers' read buffer
        self.by_fd: dict[int, tuple[_Pair, int]] = {}
        self.by_key: dict[int, tuple[_Pair, int]] = {}  # socket cookie: its pair and side
        self.pairs: set[_Pair] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def _watch(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self.loop.add_reader(self.epoll.fileno(), self._events)
            self.loop.add_reader(self.map.ring_fd, self._signals)

    def _events(self) -> None:
        for fd, mask in self.epoll.poll(0):
            found = self.by_fd.get(fd)
            if found is not None:
                found[0].event(found[1], mask)

    def _signals(self) -> None:
        """The program's signals: each names a socket whose credit needs the relay."""
        assert self.map.signals is not None
        for key in self.map.signals.take():
            found = self.by_key.get(key)
            if found is not None:
                with contextlib.suppress(OSError):  # the pair is ending; its events say how
                    found[0].signalled(found[1])

    async def join(self, a: socket.socket, b: socket.socket, *,
                   first_to_a: bytes = b"") -> RawSpliceResult:
        """Splice ``a`` and ``b`` in the kernel until the pair ends (rawsplice's contract)."""
        refused = turned_away(a, b, self.closed, len(self.pairs), self.max_pairs)
        if refused is not None:
            return refused
        self._watch()
        assert self.loop is not None
        try:
            prepare(a, self.keepalive)
            prepare(b, self.keepalive)
            pair = _Pair(self, a, b, first_to_a)
        except OSError as exc:
            a.close()
            b.close()
            return RawSpliceResult(0, 0, f"socket refused: {exc.strerror or exc}")
        for name, sock in (("a", a), ("b", b)):
            if _pending(sock):  # it would sit there unseen: nothing new wakes the program
                pair.finish(f"{name} sent data before the splice")
                return RawSpliceResult(0, 0, pair.done.result())
        try:
            # b under a's cookie first: a's input is redirected only once a is in the map.
            for i, key in enumerate(pair.keys):
                self.by_key[key] = (pair, i)
            self.map.put(pair.keys[0], b, self.max_queued, pair.base[1][0])
            pair.stored = 1
            self.map.put(pair.keys[1], a, self.max_queued, pair.base[0][0])
            pair.stored = 2
            for i, fd in enumerate(pair.fds):
                self.epoll.register(fd, select.EPOLLRDHUP)
                self.by_fd[fd] = (pair, i)
            if first_to_a:
                await self.loop.sock_sendall(a, first_to_a)
        except OSError as exc:
            pair.finish(f"join refused: {exc.strerror or exc}")
            return RawSpliceResult(0, 0, pair.done.result())
        self.pairs.add(pair)
        try:
            reason = await asyncio.shield(pair.done)
        except asyncio.CancelledError:
            pair.finish("cancelled")
            raise
        finally:
            self.pairs.discard(pair)
        return RawSpliceResult(pair.carried[0], pair.carried[1], reason)

    def close(self) -> None:
        """End every pair ("splicer closed"), free the map and the program; idempotent."""
        if self.closed:
            return
        self.closed = True
        for pair in list(self.pairs):
            pair.finish("splicer closed")
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(self.epoll.fileno())
            self.loop.remove_reader(self.map.ring_fd)
        self.epoll.close()
        self.map.close()
