"""The relay's splice port: plain TCP, where raw lane peers present their one-time ticket.

Each accepted socket must send exactly one preamble (:mod:`rdesk.protocol.rawlane`) within
``preamble_timeout`` seconds; it is read to its fixed size and no further, so nothing a peer
sends after it is consumed here. The ticket (:class:`~rdesk.relay.tickets.Tickets`, single
use) names the session and the end; the socket is then handed to ``claim``, which owns it from
then on, or refused. Every refusal is the status byte and one line, then a close, and an
audit event (``raw_refused``, the 1st, 10th, 100th... of a source for a flood's garbage).

Limits: a per-source token bucket (the relay's shared ``splice`` bucket) and at most
``max_raw_pending`` sockets still owing their preamble; above either a socket is refused at
once. Nothing of a refused or timed-out socket is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable

from rdesk.protocol.rawlane import PREAMBLE_BYTES, RawLaneError, parse_preamble, refusal
from rdesk.relay.config import RelayConfig
from rdesk.relay.messages import RelayProtocolError
from rdesk.relay.tickets import Ticket, Tickets

__all__ = ["Claim", "SplicePort", "say_no"]

log = logging.getLogger(__name__)
#: Given what a ticket names and its socket: whether the socket was taken (else refused).
Claim = Callable[[Ticket, socket.socket], bool]
Limit = Callable[[str], Awaitable[None]]
Event = Callable[..., None]


def say_no(sock: socket.socket, reason: str) -> None:
    """Send the refusal status (best effort: it fits any send buffer) and close ``sock``.

    What the peer sent beyond its preamble is read and dropped first (up to 64 KiB): a socket
    closed with unread bytes is reset, and the reset can overtake the refusal line."""
    with contextlib.suppress(OSError):
        sock.recv(65536, socket.MSG_DONTWAIT)
    with contextlib.suppress(OSError):
        sock.send(refusal(reason), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
    sock.close()


async def _read_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise RawLaneError(f"closed after {len(data)} bytes of its preamble")
        data += chunk
    return data


class SplicePort:
    """One listening splice port. :meth:`start`, then :meth:`stop` (idempotent)."""

    def __init__(self, config: RelayConfig, tickets: Tickets, claim: Claim, limit: Limit,
                 event: Event, clock: Callable[[], float]) -> None:
        self.config, self.tickets, self.claim = config, tickets, claim
        self.limit, self._event, self.clock = limit, event, clock
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self.pending: set[asyncio.Task[None]] = set()
        self._refused: Counter[str] = Counter()

    @property
    def port(self) -> int:
        assert self._listener is not None
        port: int = self._listener.getsockname()[1]
        return port

    async def start(self) -> None:
        """Listen on the configured address and port; ``OSError`` if unavailable."""
        family = socket.AF_INET6 if ":" in self.config.bind else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.config.bind, self.config.splice_bind_port()))
            listener.listen(512)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._accepting = asyncio.ensure_future(self._accept_forever())

    async def stop(self) -> None:
        """Stop accepting; refuse every socket still owing its preamble."""
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
            self._accepting = None
        for task in list(self.pending):
            task.cancel()
        if self.pending:
            await asyncio.wait(set(self.pending))
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            try:
                sock, addr = await loop.sock_accept(self._listener)
            except OSError as exc:  # out of descriptors, say: wait, do not spin
                log.warning("splice port: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            source = str(addr[0])
            if len(self.pending) >= self.config.max_raw_pending:
                self._refuse(sock, source, "relay is busy: too many sockets without a ticket")
                continue
            task = asyncio.ensure_future(self._serve(loop, sock, source))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    def _refuse(self, sock: socket.socket, source: str, reason: str) -> None:
        self._refused[source] += 1
        count = self._refused[source]
        if count == 1 or str(count).strip("0") == "1":  # a flood is not a flood of lines
            self._event("raw_refused", source=source, reason=reason, count=count)
        if len(self._refused) > 10_000:
            self._refused.clear()
        say_no(sock, reason)

    async def _serve(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                     source: str) -> None:
        sock.setblocking(False)
        try:
            await self.limit(source)
            data = await asyncio.wait_for(_read_exactly(loop, sock, PREAMBLE_BYTES),
                                          self.config.preamble_timeout)
            found = self.tickets.take(parse_preamble(data), self.clock())
            if found is None:
                raise RawLaneError("unknown, expired or used ticket")
        except asyncio.TimeoutError:
            self._refuse(sock, source, "no preamble in time")
            return
        except (RawLaneError, RelayProtocolError) as exc:
            self._refuse(sock, source, exc.reason if isinstance(exc, RelayProtocolError)
                         else str(exc))
            return
        except OSError:  # reset by the peer
            sock.close()
            return
        except BaseException:
            sock.close()
            raise
        try:
            taken = self.claim(found, sock)
        except BaseException:
            sock.close()
            raise
        if not taken:
            self._refuse(sock, source, "the rendezvous is over")
