"""The relay's raw lane: the host's TLS end to end over two TCP sockets the relay only copies.

For a viewer that asked for it (``/connect?lanes=raw``) and a host that can take it
(``/host?lanes=raw``), the rendezvous is :class:`~rdesk.relay.messages.RawRendezvous`: the
host opens plain TCP to this instance's splice port (:class:`~rdesk.relay.spliceport.SplicePort`)
with its one-time ticket and is answered ``GO``; the viewer is then sent
:class:`~rdesk.relay.messages.Raw` with a ticket of its own, comes the same way, and the two
sockets are joined (:func:`~rdesk.relay.rawsplice.open_splicer`: in the kernel when it can
be, else in userspace) with the viewer's ``GO`` sent at the join. Only then does the viewer
start TLS with the host, so nothing is pending in either socket at the join (checked).

The audit log gets ``raw_join`` and ``raw_end`` (bytes each way, the reason, the duration),
never payload; refusals on the splice port are ``raw_refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import urllib.parse
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection

from rdesk.protocol.errors import CloseCode
from rdesk.protocol.rawlane import GO
from rdesk.relay.config import RelayConfig
from rdesk.relay.messages import RelayProtocolError, encode
from rdesk.relay.protocol import RelayViewerMachine
from rdesk.relay.rawsplice import RawSpliceResult, Splicer, open_splicer
from rdesk.relay.spliceport import Limit, SplicePort, say_no
from rdesk.relay.tickets import HOST, VIEWER, Ticket, Tickets

__all__ = ["RawLane", "RawOffer", "split_address"]

log = logging.getLogger(__name__)
Event = Callable[..., None]
#: Given a session and the host's raw socket: whether a viewer waits for it (it is taken).
HostArrived = Callable[[str, socket.socket], bool]


@dataclasses.dataclass(frozen=True)
class RawOffer:
    """What the host of one raw rendezvous is told: where to go, with which ticket.

    ``address`` is ``None`` for a host on this instance (it reaches the splice port at its
    relay URL's host name); ``forward_address`` is the name a host on another instance uses.
    """

    address: str | None
    port: int
    ticket: bytes
    forward_address: str | None


def split_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as ``(host, port)``; ``ValueError`` if malformed."""
    parts = urllib.parse.urlsplit("//" + text.strip())
    port = parts.port  # ValueError for a bad one
    if not parts.hostname or port is None or not 0 < port < 65536 or parts.path:
        raise ValueError(f"a splice address is HOST:PORT, not {text[:80]!r}")
    return parts.hostname, port


def _pending(sock: socket.socket) -> str | None:
    """Why ``sock`` cannot be joined (data already waiting, or closed), or ``None``."""
    try:
        peeked = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        return f"reset ({exc.strerror or exc})"
    return "sent data before go" if peeked else "closed before the join"


class RawLane:
    """The splice port, its tickets, the splicer and the joined pairs of one instance."""

    def __init__(self, config: RelayConfig, limit: Limit, host_arrived: HostArrived,
                 event: Event, clock: Callable[[], float]) -> None:
        self.config, self.host_arrived, self._event, self.clock = config, host_arrived, event, clock
        self.tickets = Tickets(config.ticket_lifetime, capacity=4 * config.max_sessions + 64)
        self.port = SplicePort(config, self.tickets, self._claim, limit, event, clock)
        self.splicer: Splicer | None = None
        self._viewers: dict[str, asyncio.Future[socket.socket]] = {}
        #: Joined pairs still running, by their task (the drain waits for them).
        self.joined: dict[asyncio.Task[RawSpliceResult], str] = {}

    async def start(self) -> None:
        """Listen on the splice port and set up the splicer (``OSError`` if the port is taken)."""
        await self.port.start()
        try:
            self.splicer, why_not = open_splicer(self.config.splicer,
                                                 max_pairs=2 * self.config.max_sessions)
        except BaseException:
            await self.port.stop()
            raise
        if why_not is not None:
            log.warning("raw lane: copying in userspace, the kernel splicer is unavailable: %s",
                        why_not)

    async def stop(self) -> None:
        """Close the splice port, end every joined pair, free the splicer (idempotent)."""
        await self.port.stop()
        for task in list(self.joined):
            task.cancel()
        if self.joined:
            await asyncio.wait(set(self.joined))
        if self.splicer is not None:
            self.splicer.close()
            self.splicer = None

    def advertised(self) -> tuple[str | None, int]:
        """The splice address told to peers: ``--splice-address``, or ours (``None``: the
        host name the peer reached this relay at)."""
        if self.config.splice_address is not None:
            return split_address(self.config.splice_address)
        return None, self.port.port

    def offer(self, session: str) -> RawOffer:
        """A raw rendezvous for ``session``: the host's ticket and where it goes."""
        address, port = self.advertised()
        forward = address
        if forward is None and self.config.public_url is not None:
            forward = urllib.parse.urlsplit(self.config.public_url).hostname
        return RawOffer(address, port, self.tickets.issue(session, HOST, self.clock()), forward)

    def _claim(self, ticket: Ticket, sock: socket.socket) -> bool:
        if ticket.end == HOST:
            if not self.host_arrived(ticket.session, sock):
                return False
            with contextlib.suppress(OSError):  # a host gone already fails at the join
                sock.send(GO, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            return True
        waiting = self._viewers.get(ticket.session)
        if waiting is None or waiting.done():
            return False
        waiting.set_result(sock)
        return True

    async def serve(self, ws: ServerConnection, machine: RelayViewerMachine,
                    host_sock: socket.socket, host_id: str, session: str) -> None:
        """Send the viewer to the splice port, join it to ``host_sock``, run the pair to its
        end. Owns ``host_sock``; raises the refusal that ended it before the join."""
        try:
            viewer_sock = await self._viewer_socket(ws, machine, host_sock, session)
            for end, sock in (("viewer", viewer_sock), ("host", host_sock)):
                why = _pending(sock)
                if why is not None:
                    say_no(viewer_sock, f"{end} {why}")
                    host_sock.close()
                    raise RelayProtocolError(f"{end} {why}", CloseCode.PROTOCOL_ERROR)
        except RelayProtocolError as exc:
            self._event("raw_refused", id=host_id, session=session, reason=exc.reason)
            raise
        assert self.splicer is not None
        started = self.clock()
        self._event("raw_join", id=host_id, session=session, splicer=self.splicer.kind)
        task: asyncio.Task[RawSpliceResult] = asyncio.ensure_future(
            self.splicer.join(viewer_sock, host_sock, first_to_a=GO))
        self.joined[task] = session
        try:
            with contextlib.suppress(Exception):
                await ws.close(CloseCode.NORMAL, "raw lane")
            result = await task  # cancelling this handler cancels the pair (both closed)
        finally:
            del self.joined[task]
        self._event("raw_end", id=host_id, session=session, reason=result.reason,
                    viewer_bytes=result.a_to_b, host_bytes=result.b_to_a,
                    duration=round(self.clock() - started, 3))

    async def _viewer_socket(self, ws: ServerConnection, machine: RelayViewerMachine,
                             host_sock: socket.socket, session: str) -> socket.socket:
        """The viewer's socket on the splice port, once it presented its ticket."""
        loop = asyncio.get_running_loop()
        arrived: asyncio.Future[socket.socket] = loop.create_future()
        self._viewers[session] = arrived
        gone = asyncio.ensure_future(ws.wait_closed())
        try:
            address, port = self.advertised()
            ticket = self.tickets.issue(session, VIEWER, self.clock())
            await ws.send(encode(machine.raw(self.clock(), address, port, ticket)))
            waiters: set[asyncio.Future[Any]] = {arrived, gone}
            await asyncio.wait(waiters, timeout=self.config.ticket_lifetime,
                               return_when=asyncio.FIRST_COMPLETED)
            if arrived.done() and not arrived.cancelled():
                return arrived.result()
            if gone.done():
                raise RelayProtocolError("viewer left", CloseCode.GOING_AWAY)
            raise RelayProtocolError("the viewer did not reach the splice port in time",
                                     CloseCode.POLICY)
        except BaseException:
            host_sock.close()
            if arrived.done() and not arrived.cancelled():
                arrived.result().close()
            raise
        finally:
            gone.cancel()
            arrived.cancel()
            self._viewers.pop(session, None)
            self.tickets.forget(session)
