"""What every relay endpoint does with its websocket: name the peer, read under a machine's
deadline, and refuse with one line."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from rdesk.relay.messages import MAX_REASON, Refused, encode
from rdesk.relay.protocol import Machine

__all__ = ["lanes", "parse_lanes", "peer", "recv", "refuse"]


def peer(ws: ServerConnection) -> str:
    """The source address of ``ws``, for rate limits and the audit log."""
    addr = ws.remote_address
    return str(addr[0]) if addr else "?"


def lanes(ws: ServerConnection) -> frozenset[str]:
    """The lanes the peer says it can take, from its request's query (:func:`parse_lanes`)."""
    return parse_lanes(ws.request.path if ws.request is not None else "")


def parse_lanes(path: str) -> frozenset[str]:
    """The lanes a request path asks for: ``/connect?lanes=raw,ws`` → ``{"raw", "ws"}``.

    Never raises: only the first 256 characters of the query and its first 8 names count,
    and a name other than ``raw`` or ``ws`` is ignored (an empty set: the websocket lane).
    A query, not a message field: a relay that predates the raw lane ignores it (its message
    codec refuses unknown fields) and serves the websocket lane, as before.
    """
    query = urllib.parse.parse_qs(path.partition("?")[2][:256])
    named = ",".join(query.get("lanes", []))
    return frozenset(lane for lane in named.split(",")[:8] if lane in ("raw", "ws"))


async def refuse(ws: ServerConnection, reason: str, code: int) -> None:
    """Send ``refused {reason}`` and close with ``code``; never raises for a gone peer."""
    reason = " ".join(reason.split())[:MAX_REASON]
    with contextlib.suppress(ConnectionClosed):
        await ws.send(encode(Refused(reason)))
    await ws.close(code, reason)


async def recv(
    ws: ServerConnection, machine: Machine[Any], clock: Callable[[], float]
) -> str | bytes:
    """The next message, or the machine's timeout refusal once its deadline passes."""
    while True:
        deadline = machine.deadline()
        timeout = None if deadline is None else max(0.0, deadline - clock())
        try:
            return await asyncio.wait_for(ws.recv(), timeout)
        except asyncio.TimeoutError:
            machine.check_timer(clock())  # raises once the deadline has passed
