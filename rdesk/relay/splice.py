"""Splicing two websockets together, message by message, without looking inside.

The relay joins a viewer's ``/connect`` websocket to the host's ``/data`` websocket. Each
binary message read from one is written to the other, whole and in order; a text message is a
protocol error (everything across a splice is the end-to-end tunnel's ciphertext, binary).

**Backpressure, never unbounded buffering**: a message is read from one side only once the
previous one has been written to the other side and the socket's write buffer has drained
below websockets' ``write_limit``; while it has not, the reading side's receive queue fills to
its ``max_queue`` frames and websockets stops reading its socket, so the sender's TCP window
closes. What the relay holds per direction is bounded by ``max_queue`` messages of at most
``max_message`` bytes plus the write limit.

**No half-open splice**: when either side closes, fails or sends something refused, the
other side is closed too, with the same code when it is one an application may use.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from rdesk.protocol.errors import CloseCode

__all__ = ["SpliceResult", "splice"]

#: Close codes passed through from one side to the other as they are.
_PASSED = {1000, 1001, 1008, 1009}


@dataclasses.dataclass(frozen=True)
class SpliceResult:
    """How a splice ended: bytes carried each way and the one-line reason it ended."""

    a_to_b: int = 0
    b_to_a: int = 0
    reason: str = ""
    code: int = CloseCode.NORMAL


class _Ended(Exception):
    """One side of the splice ended it: ``side`` names it, ``code``/``reason`` say how."""

    def __init__(self, side: str, code: int, reason: str) -> None:
        super().__init__(reason)
        self.side, self.code, self.reason = side, code, reason


def _closed(side: str, exc: ConnectionClosed) -> _Ended:
    if exc.sent is not None and exc.sent.code == CloseCode.TOO_BIG:
        return _Ended(side, CloseCode.TOO_BIG, f"{side} sent a message over the splice limit")
    if exc.rcvd is None:  # no close frame: the connection died (or was aborted)
        return _Ended(side, CloseCode.GOING_AWAY, f"{side} went away")
    code, reason = exc.rcvd.code, exc.rcvd.reason
    if code in _PASSED or 3000 <= code <= 4999:
        return _Ended(side, code, reason or f"{side} closed")
    return _Ended(side, CloseCode.GOING_AWAY, f"{side} went away")


async def _pump(src: Connection, dst: Connection, names: tuple[str, str],
                count: list[int]) -> None:
    """Copy ``src`` to ``dst`` until one ends; always raises :class:`_Ended`."""
    while True:
        try:
            message = await src.recv()
        except ConnectionClosed as exc:
            raise _closed(names[0], exc) from None
        if isinstance(message, str):
            raise _Ended(names[0], 1003, f"{names[0]} sent text: the splice is binary only")
        try:
            await dst.send(message)
        except ConnectionClosed as exc:
            raise _closed(names[1], exc) from None
        count[0] += len(message)


def _short(reason: str) -> str:
    # A close reason is at most 123 bytes of UTF-8.
    return reason.encode()[:120].decode("utf-8", "ignore")


async def splice(a: Connection, b: Connection, max_message: int, *,
                 names: tuple[str, str] = ("viewer", "host")) -> SpliceResult:
    """Carry binary messages between ``a`` and ``b`` until either ends; then close both.

    Raises the limit of each connection's incoming messages to ``max_message`` bytes (a
    larger one closes the splice with 1009). Returns when both are closed.
    """
    for ws in (a, b):
        ws.protocol.max_message_size = max_message
    a_to_b, b_to_a = [0], [0]
    tasks = [asyncio.ensure_future(_pump(a, b, names, a_to_b)),
             asyncio.ensure_future(_pump(b, a, (names[1], names[0]), b_to_a))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
    exc = next(iter(done)).exception()
    ended = exc if isinstance(exc, _Ended) else _Ended(
        "relay", CloseCode.INTERNAL_ERROR, "internal error in the splice")
    reason = _short(ended.reason)
    await asyncio.gather(a.close(ended.code, reason), b.close(ended.code, reason))
    return SpliceResult(a_to_b[0], b_to_a[0], ended.reason, ended.code)
