"""What a viewer asks the host and waits for, and the messages its features send:
:class:`Requests`, the part of :class:`~rdesk.client.running.Connection` that keeps the
outstanding ``sync`` and ``resize`` requests by id (answered by ``input_ack`` and
``resize_result``) and sends the clipboard's, transfers' and monitor choice's messages.

Each method raises :class:`~rdesk.client.errors.ConnectionLost` once the connection has ended;
a request outstanding when it ends is cancelled and raises the same.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rdesk.client.errors import ConnectionLost
from rdesk.client.inputs import Outgoing
from rdesk.protocol.inputs import InputAck, Sync
from rdesk.protocol.monitors import SelectMonitor
from rdesk.protocol.resize import MAX_SIDE, MIN_SIDE, Resize, ResizeResult
from rdesk.protocol.session import Session

__all__ = ["Requests"]


class Requests:
    """Requests answered by id, and the features' sends (the connection writes them)."""

    session: Session
    #: Set when the connection ends: the reason, as an exception.
    closed: asyncio.Future[ConnectionLost]

    def __init__(self) -> None:
        self._syncs: dict[int, asyncio.Future[InputAck]] = {}
        self._resizes: dict[int, asyncio.Future[ResizeResult]] = {}
        self._sync_id = 0

    async def _send(self, message: Outgoing) -> None:
        """Send ``message`` (the connection does it; raises once it has ended)."""
        raise NotImplementedError

    async def _send_frame(self, frame: str | bytes) -> None:
        """Write one frame (the connection does it)."""
        raise NotImplementedError

    # --- the host's answers (from the connection's reader) -------------------------------------

    def _answered(self, message: InputAck | ResizeResult) -> None:
        """The host answered the request with ``message.id`` (unknown or late ids: ignored)."""
        table: dict[int, Any] = self._syncs if isinstance(message, InputAck) else self._resizes
        future = table.pop(message.id, None)
        if future is not None and not future.done():
            future.set_result(message)

    def _cancel_requests(self) -> None:
        """The connection ended: every outstanding request raises its reason."""
        for table in (self._syncs, self._resizes):
            for future in table.values():
                future.cancel()

    # --- requests --------------------------------------------------------------------------------

    async def sync(self, timeout: float = 10.0) -> InputAck:
        """Wait until the host has handled every input sent before; return its answer."""
        self._sync_id = (self._sync_id + 1) & 0xFFFFFFFF
        return await self._ask(self._syncs, Sync(self._sync_id), timeout)

    async def request_resize(self, width: int, height: int, timeout: float = 10.0) -> ResizeResult:
        """Ask the host to make its (virtual) desktop ``width`` x ``height``; return its
        answer (``ok``, or the reason it refused). On success a ``screen`` of the new size
        and a full update follow (:meth:`wait_exact`). Raises ``ValueError`` for a size
        outside the protocol's bounds, before anything is sent."""
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise ValueError(
                f"{width}x{height}: each side must be {MIN_SIDE} to {MAX_SIDE} pixels"
            )
        self._sync_id = (self._sync_id + 1) & 0xFFFFFFFF
        return await self._ask(self._resizes, Resize(self._sync_id, width, height), timeout)

    async def _ask(
        self, table: dict[int, asyncio.Future[Any]], message: Sync | Resize, timeout: float
    ) -> Any:
        """Send ``message`` and wait for the answer carrying its id (``table`` holds it)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        table[message.id] = future
        await self._send(message)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.CancelledError:
            if self.closed.done():
                raise self.closed.result() from None
            raise
        finally:
            table.pop(message.id, None)

    # --- the features' messages ------------------------------------------------------------------

    async def send_transfer(self, message: object) -> None:
        """Send one ``xfer_*`` message (rdesk/client/transfer.py builds them)."""
        await self.send_clipboard(message)

    async def select_monitor(self, index: int) -> None:
        """Ask the host to share monitor ``index`` (``ALL``: the whole screen); the answer is
        ``self.monitor`` changing (and a ``screen`` of its size), or a notice."""
        await self.send_clipboard(SelectMonitor(index))

    async def send_clipboard(self, message: object) -> None:
        """Send one ``clip_*`` message (rdesk/client/clipboard.py builds them)."""
        if self.closed.done():
            raise self.closed.result()
        await self._send_frame(self.session.send(message, time.monotonic()))  # type: ignore[arg-type]
