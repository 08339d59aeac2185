"""Small parts of a viewer connection that its modules share: the counters a face shows
(:class:`Stats`), ending a websocket or a task without raising (:func:`abort`,
:func:`cancel`), and saying why a websocket ended (:func:`lost_from_ws`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

from websockets.asyncio.client import ClientConnection

from rdesk.client.address import HostAddress
from rdesk.client.errors import ConnectionLost
from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode
from rdesk.protocol.session import Session
from rdesk.protocol.updates import Update

__all__ = ["Stats", "abort", "cancel", "lost_from_ws"]


@dataclasses.dataclass
class Stats:
    """Counters a face may show (the stats overlay, ``rdesk watch``)."""

    updates: int = 0
    rects: int = 0
    bytes: int = 0
    #: Host timestamp (µs) of the last update applied.
    last_update_host_us: int = 0
    #: Round-trip time in seconds of the last answered ping (the keepalive's or one of
    #: :meth:`Connection.ping`), from the session; ``None`` until one is answered.
    rtt: float | None = None
    #: Smallest ping round trip seen (the link's base RTT, for ``rdesk watch``).
    min_rtt: float | None = None
    #: Pongs received: the host's answers to our pings.
    pongs: int = 0
    #: The last update applied (``rdesk watch`` infers quality and scale from it).
    last_update: Update | None = None


async def abort(ws: ClientConnection, session: Session | None, code: int, reason: str) -> None:
    """Close ``ws`` with ``code`` (best effort, bounded in time); with a ``session``, send
    its Close message first."""
    frame = session.close_frame(code, reason) if session is not None else None
    with contextlib.suppress(Exception):
        if frame is not None:
            await asyncio.wait_for(ws.send(frame), 2)
    with contextlib.suppress(Exception):
        # At most 123 bytes of UTF-8, or the close code itself is lost: cut by bytes.
        await asyncio.wait_for(ws.close(code, reason.encode()[:123].decode(errors="ignore")), 5)


async def cancel(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` (if any and not done) and wait for it to end; errors are dropped."""
    if task is None:
        return
    task.cancel()
    # gather() hands the task's end back as a value, yet still raises if *we* are cancelled.
    await asyncio.gather(task, return_exceptions=True)


def lost_from_ws(ws: ClientConnection, address: HostAddress) -> ConnectionLost:
    """Why ``ws`` ended, from its closing frames, as the viewer tells its user."""
    sent = ws.protocol.close_sent
    if sent is not None and sent.code == CloseCode.TOO_BIG:
        # The websocket layer refused a frame over the viewer's limit: say so.
        return ConnectionLost(f"{address}: the host sent a message larger than "
                              f"{limits.MAX_UPDATE_MESSAGE} bytes", CloseCode.TOO_BIG)
    if sent is not None and sent.code in (1002, 1007):
        return ConnectionLost(f"{address}: the host broke the websocket protocol "
                              f"({sent.reason or sent.code})", sent.code)
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        return ConnectionLost(f"{address}: connection lost")
    reason = rcvd.reason or "closed"
    return ConnectionLost(f"{address} closed the connection: {reason}", rcvd.code)
