"""Splicing two websockets together, frame by frame, without looking inside.

The relay joins a viewer's ``/connect`` websocket to the host's ``/data`` websocket. Until
then the websockets library serves both (the control messages); at the splice the relay takes
the two TLS transports over (:func:`take_over`) and from then on moves **frames** itself: a
pair of ``asyncio.Protocol`` objects, one per side, each reading frames with the strict
:class:`~rdesk.relay.frames.FrameReader` and writing them, unmasked, straight to the other
side's transport in the same callback — no message reassembly, no queue, no task hop. What one
callback reads is written in one ``transport.write``, so several small frames become one TLS
record. Everything across a splice is the end-to-end tunnel's ciphertext (binary).

**Backpressure, never unbounded buffering**: when a side's write buffer passes its high-water
mark the other side stops reading (``pause_reading``) until it drains below the low mark, so a
peer that stops reading stalls its sender's TCP window instead of filling the relay's memory.
What the relay holds per direction is one incomplete frame (at most ``max_message`` bytes and a
header) plus the write buffer's high mark and what one read decrypts (asyncio's 256 KiB).

**No half-open splice**: when either side closes, fails, goes silent (a ping unanswered for a
whole ``ping_interval``) or sends something refused, the other side is closed too, with the
same code when it is one an application may use (1000, 1001, 1008, 1009, 3000-4999, e.g. a
host's 4001) and ``1001 <side> went away`` otherwise. Each side gets a close frame, and its
transport is closed once that side answered it or after ``close_timeout``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.protocol import State
from websockets.streams import StreamReader

from rdesk.protocol.errors import CloseCode
from rdesk.relay import frames
from rdesk.relay.frames import FrameError, FrameReader

__all__ = ["Splice", "SpliceResult", "take_over"]

#: Close codes passed through from one side to the other as they are.
_PASSED = {1000, 1001, 1008, 1009}
#: Write-buffer marks of each side: above the high one the other side stops reading.
WRITE_HIGH, WRITE_LOW = 256 * 1024, 64 * 1024


@dataclasses.dataclass(frozen=True)
class SpliceResult:
    """How a splice ended: payload bytes carried each way and the one-line reason it ended."""

    a_to_b: int = 0
    b_to_a: int = 0
    reason: str = ""
    code: int = CloseCode.NORMAL


def _idle(ws: Connection) -> bool:
    """Whether websockets holds nothing of ``ws``'s input: no queued frame, no buffered byte,
    its parser waiting between two frames (so the next byte on the wire starts a frame)."""
    protocol = ws.protocol
    if protocol.state is not State.OPEN or protocol.reader.buffer or ws.transport.is_closing():
        return False
    if len(ws.recv_messages.frames):
        return False
    generator: Any = protocol.parser
    while getattr(generator, "gi_yieldfrom", None) is not None:
        generator = generator.gi_yieldfrom
    return getattr(generator, "gi_code", None) is StreamReader.at_eof.__code__


def take_over(ws: Connection) -> asyncio.Transport | None:
    """Take ``ws``'s transport from websockets, or ``None`` if the peer sent data ahead of the
    splice (nothing of it may be lost or reordered, and neither peer is allowed to)."""
    if not _idle(ws):
        return None
    if ws.keepalive_task is not None:
        ws.keepalive_task.cancel()
        ws.keepalive_task = None
    return ws.transport


class _Side(asyncio.Protocol):
    """One spliced websocket: reads its frames, writes the other side's."""

    def __init__(self, splice: Splice, name: str, ws: Connection,
                 transport: asyncio.Transport) -> None:
        self.splice, self.name, self.ws, self.transport = splice, name, ws, transport
        self.reader = FrameReader(name, splice.max_message)
        self.peer: _Side
        self.carried = 0
        self.heard = True  # anything received since the last keepalive tick
        self.pinged = False
        self.closing = False  # a close frame was sent to this side
        self.answered = False  # this side sent its close frame, or is gone
        self.lost = False
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)

    # asyncio.Protocol -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.heard, self.pinged = True, False
        try:
            found = self.reader.feed(data)
        except FrameError as exc:
            self.splice.end(exc.code, exc.reason)
            return
        out: list[bytes] = []
        for frame in found:
            opcode = frame.opcode
            if opcode <= frames.BINARY:  # continuation or binary (text is refused)
                if self.splice.ending is None:
                    out += (frame.header, frame.payload)
                    self.carried += len(frame.payload)
            elif opcode == frames.PING:
                if not self.closing:
                    self.transport.write(frames.encode(frames.PONG, frame.payload))
            elif opcode == frames.CLOSE:
                self._closed_by_peer(frame.payload)
                break
        if out and not self.peer.closing:
            self.peer.transport.write(b"".join(out))

    def _closed_by_peer(self, payload: bytes) -> None:
        self.answered = True
        try:
            code, reason = frames.parse_close(self.name, payload)
        except FrameError as exc:
            self.splice.end(exc.code, exc.reason)
            return
        if code is not None and (code in _PASSED or 3000 <= code <= 4999):
            self.splice.end(code, reason or f"{self.name} closed")
        else:
            self.splice.end(CloseCode.GOING_AWAY, f"{self.name} went away")
        self.splice.settle()

    def eof_received(self) -> bool:
        self._gone()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._gone()
        self.ws.connection_lost(exc)  # websockets' own state ends CLOSED, its waiters return
        self.splice.settle()

    def _gone(self) -> None:
        self.answered = True
        if not self.splice.ending:
            self.splice.end(CloseCode.GOING_AWAY, f"{self.name} went away")

    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()

    # the splice's own doings ----------------------------------------------------------------

    def send_close(self, code: int, reason: str) -> None:
        if not self.closing and not self.lost:
            self.closing = True
            self.transport.write(frames.close_frame(code, reason))
            if not self.transport.is_closing():
                self.transport.resume_reading()  # to hear its answer

    def tick(self) -> None:
        """Keepalive: a ping when this side was silent, the end when it did not answer one."""
        if self.heard:
            self.heard = False
        elif self.pinged:
            self.splice.end(CloseCode.GOING_AWAY, f"{self.name} went away (no answer to ping)")
        elif not self.closing:
            self.pinged = True
            self.transport.write(frames.encode(frames.PING, b"rdesk"))


class Splice:
    """Carry frames between websockets ``a`` and ``b`` (their transports taken over with
    :func:`take_over`) until either ends; :meth:`run` returns once both are closed.

    :param first: bytes written to ``a`` before anything it receives (the ``spliced`` frame).
    """

    def __init__(self, a: tuple[Connection, asyncio.Transport],
                 b: tuple[Connection, asyncio.Transport], max_message: int, *,
                 names: tuple[str, str] = ("viewer", "host"), first: bytes = b"",
                 ping_interval: float = 20.0, close_timeout: float = 5.0) -> None:
        self.max_message = max_message
        self.ending: tuple[int, str] | None = None
        self._close_timeout = close_timeout
        self._ping_interval = ping_interval
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self.a = _Side(self, names[0], *a)
        self.b = _Side(self, names[1], *b)
        self.a.peer, self.b.peer = self.b, self.a
        if first:
            self.a.transport.write(first)
        for side in (self.a, self.b):
            side.transport.set_protocol(side)
        self._keepalive = self._loop.call_later(ping_interval, self._tick)

    def _tick(self) -> None:
        self.a.tick()
        self.b.tick()
        if self.ending is None:
            self._keepalive = self._loop.call_later(self._ping_interval, self._tick)

    def end(self, code: int, reason: str) -> None:
        """End the splice with ``code`` and ``reason`` on both sides (the first call wins)."""
        if self.ending is not None:
            return
        self.ending = (code, reason)
        self._keepalive.cancel()
        for side in (self.a, self.b):
            side.send_close(code, reason)
        self._timer = self._loop.call_later(self._close_timeout, self._abort)
        self.settle()

    def settle(self) -> None:
        """Close each side's transport once it answered the close (or is gone)."""
        for side in (self.a, self.b):
            if side.answered and not side.transport.is_closing():
                side.transport.close()
        if self.a.lost and self.b.lost and not self._done.done():
            if self._timer is not None:
                self._timer.cancel()
            self._done.set_result(None)

    def _abort(self) -> None:
        for side in (self.a, self.b):
            if not side.lost:
                side.transport.abort()

    async def run(self) -> SpliceResult:
        """Wait for the end; cancelled, close both sides with ``1001 relay is shutting down``
        (bounded by ``close_timeout``) and re-raise."""
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            self.end(CloseCode.GOING_AWAY, "relay is shutting down")
            await asyncio.shield(self._done)
            raise
        assert self.ending is not None
        code, reason = self.ending
        return SpliceResult(self.a.carried, self.b.carried, reason, code)
