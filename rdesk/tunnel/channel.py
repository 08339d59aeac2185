"""An open tunnel end over a websocket-like object: the I/O both adapters share.

The websocket is anything with ``async send(bytes)``, ``async recv()`` and
``async close(code, reason)`` that raises :class:`websockets.exceptions.ConnectionClosed` once it
is closed — a websockets connection to the relay, whose messages the relay splices to the peer.
Configure it to accept messages of :data:`~rdesk.tunnel.wire.MAX_WIRE_MESSAGE` bytes.

Closing follows the websocket closing handshake, inside the tunnel: the end that closes sends
its authenticated close record and waits (at most ``close_timeout``) for the peer's answering
one; the end that receives a close record answers it, waits for the closer to drop the
websocket, then closes its own. A tunnel whose websocket goes away without the close records
was cut — by the peer, the network or the relay — and says so (``close_rcvd`` stays ``None``).
Unlike a websockets connection there is no background reader: the answer to a close record is
sent by whoever is in :meth:`TunnelChannel.recv`, so an end should keep a reader running (the
viewer's receive loop and the host's serving loop both do), else the closer waits its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from rdesk.protocol.errors import CloseCode
from rdesk.tunnel.errors import TunnelError
from rdesk.tunnel.machine import (
    Closed,
    Established,
    Message,
    TunnelInitiator,
    TunnelResponder,
)
from rdesk.tunnel.states import State

__all__ = [
    "CLOSE_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "ChannelClosed",
    "TunnelChannel",
    "WebsocketLike",
    "close_websocket",
    "handshake",
]

#: Seconds a handshake may take before the tunnel gives up.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds to wait for the peer's answering close record, then for it to drop the websocket.
CLOSE_TIMEOUT = 5.0


#: The websocket's own close frame carries no reason of the session's: the real code and reason
#: travel in the authenticated close records, which the relay cannot read.
_SEALED = ""


class WebsocketLike(Protocol):
    """What the tunnel needs of the websocket it rides on."""

    async def send(self, message: bytes, /) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class ChannelClosed(Exception):
    """Nothing more can be sent or received; the channel's attributes say why."""


async def close_websocket(ws: WebsocketLike, code: int, reason: str) -> None:
    """Close ``ws`` with a code and a reason cut to fit a close frame; never raises."""
    cut = reason.encode("utf-8")[:120].decode("utf-8", errors="ignore")
    with contextlib.suppress(Exception):
        await ws.close(code, cut)


class TunnelChannel:
    """Records of an open tunnel end, carried over one websocket.

    One coroutine at a time may :meth:`recv` (as with websockets); :meth:`send` may be called
    from several (records are sealed and written in one order). After :class:`ChannelClosed`:
    ``close_rcvd``/``close_sent`` are the authenticated close records as ``(code, reason)``,
    ``rcvd_then_sent`` their order when both exist, ``error`` the :class:`TunnelError` that
    broke the tunnel, if one did.
    """

    def __init__(self, ws: WebsocketLike, end: TunnelInitiator | TunnelResponder,
                 close_timeout: float = CLOSE_TIMEOUT) -> None:
        self.ws = ws
        self.end = end
        self.close_timeout = close_timeout
        self.close_rcvd: tuple[int, str] | None = None
        self.close_sent: tuple[int, str] | None = None
        self.rcvd_then_sent: bool | None = None
        self.error: TunnelError | None = None
        #: Set once the websocket is closed (or being closed) for good.
        self.done = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._reading = False

    # --- sending ----------------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Seal and write one message; :class:`ChannelClosed` once closing or closed."""
        async with self._send_lock:
            if self.done.is_set() or self.end.state is not State.OPEN:
                raise ChannelClosed
            try:
                record = self.end.send(message)
            except TunnelError as exc:  # the key is used up
                await self._fail(exc)
                raise ChannelClosed from exc
            await self._write(record)

    async def _write(self, record: bytes) -> None:
        try:
            await self.ws.send(record)
        except ConnectionClosed:
            self.done.set()
            raise ChannelClosed from None

    # --- receiving --------------------------------------------------------------------------

    async def recv(self) -> str | bytes:
        """The peer's next message; :class:`ChannelClosed` when there will be no more."""
        while True:
            if self.done.is_set() or self.end.state in (State.CLOSED, State.CLOSE_RECEIVED):
                raise ChannelClosed
            event = await self._next_event()
            if isinstance(event, Message):
                return event.data
            if isinstance(event, Closed):
                await self._on_close_record(event)
                raise ChannelClosed

    async def _next_event(self) -> Message | Closed | None:
        self._reading = True
        try:
            data = await self.ws.recv()
        except ConnectionClosed:
            self.done.set()
            raise ChannelClosed from None
        finally:
            self._reading = False
        try:
            event = self.end.receive(data)  # type: ignore[arg-type]  # text is refused inside
        except TunnelError as exc:
            await self._fail(exc)
            raise ChannelClosed from exc
        assert event is None or isinstance(event, Message | Closed)
        return event

    async def _fail(self, exc: TunnelError) -> None:
        self.error = exc
        self.done.set()
        await close_websocket(self.ws, exc.code, exc.reason)

    async def _on_close_record(self, event: Closed) -> None:
        self.close_rcvd = (event.code, event.reason)
        if self.close_sent is not None:  # the answer to our close: the handshake is complete
            self.rcvd_then_sent = False
            self.done.set()
            return
        self.rcvd_then_sent = True
        async with self._send_lock:
            # None only if close() answered first, holding the lock: then it is answered.
            record = self.end.close(event.code, event.reason)
            if record is not None:
                with contextlib.suppress(ChannelClosed):
                    await self._write(record)
                    self.close_sent = (event.code, event.reason)
        # The peer started the close: let it drop the websocket first, then drop ours.
        with contextlib.suppress(ConnectionClosed, asyncio.TimeoutError):
            await asyncio.wait_for(self._drain(), self.close_timeout)
        self.done.set()
        await close_websocket(self.ws, CloseCode.NORMAL, _SEALED)

    async def _drain(self) -> None:
        """Read and drop until the websocket closes (nothing may follow a close record)."""
        while True:
            await self.ws.recv()

    # --- closing ----------------------------------------------------------------------------

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send the close record, wait for the answer, close the websocket. Idempotent."""
        if self.done.is_set():
            return
        with contextlib.suppress(asyncio.TimeoutError):  # a writer stuck on a full socket
            await asyncio.wait_for(self._send_close(code, reason), self.close_timeout)
        if self.close_sent is not None and not self.done.is_set():
            if self._reading:  # the reader will see the answer
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.done.wait(), self.close_timeout)
            else:
                with contextlib.suppress(ChannelClosed, asyncio.TimeoutError):
                    await asyncio.wait_for(self._await_answer(), self.close_timeout)
        self.done.set()
        await close_websocket(self.ws, CloseCode.NORMAL, _SEALED)

    async def _send_close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            record = self.end.close(code, reason)
            if record is not None:
                with contextlib.suppress(ChannelClosed):
                    await self._write(record)
                    self.close_sent = (code, reason)

    async def _await_answer(self) -> None:
        while not self.done.is_set():
            event = await self._next_event()
            if isinstance(event, Closed):
                await self._on_close_record(event)


async def handshake(ws: WebsocketLike, end: TunnelInitiator | TunnelResponder,
                    timeout: float = HANDSHAKE_TIMEOUT) -> Established:
    """Run the tunnel handshake over ``ws``; on failure close ``ws`` and raise TunnelError.

    A websocket that closes during the handshake (the relay refused, the peer went away)
    and a handshake that takes longer than ``timeout`` are TunnelErrors too.
    """

    async def steps() -> Established:
        if isinstance(end, TunnelInitiator):
            await ws.send(end.start())
        while True:
            event = end.receive(await ws.recv())  # type: ignore[arg-type]  # text refused inside
            for message in end.data_to_send():
                await ws.send(message)
            if isinstance(event, Established):
                return event

    try:
        return await asyncio.wait_for(steps(), timeout)
    except TunnelError as exc:
        await close_websocket(ws, exc.code, exc.reason)
        raise
    except asyncio.TimeoutError:
        error = TunnelError(
            f"no tunnel handshake within {timeout:g} s", CloseCode.HANDSHAKE_TIMEOUT
        )
        await close_websocket(ws, error.code, error.reason)
        raise error from None
    except ConnectionClosed as exc:
        said = exc.rcvd.reason if exc.rcvd is not None and exc.rcvd.reason else "no reason given"
        raise TunnelError(
            f"the connection closed during the tunnel handshake ({said})", CloseCode.GOING_AWAY
        ) from None
