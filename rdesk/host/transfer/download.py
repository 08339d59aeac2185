"""One download's sending side: a file sent chunk by chunk against the viewer's credit.

:class:`Download` holds the file's descriptor, its flow (rdesk/protocol/transfer.py
``Sending``) and its :class:`~rdesk.protocol.pacer.Pacer`; :meth:`Download.pump` sends the
file, reading it one chunk at a time, only while the viewer's credit and the pacer allow (a
round trip plus 6.25 ms in flight), and yields to the event loop after each chunk so screen
updates and input interleave with it. A viewer that stops reading leaves one window in flight
and the host holds nothing more. Closing the descriptor is the owner's
(:class:`~rdesk.host.transfer.room.TransferRoom`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable

from rdesk.protocol.pacer import Pacer
from rdesk.protocol.transfer import Sending, XferCancel, XferCredit

__all__ = ["Download"]

Send = Callable[[object], Awaitable[None]]


class Download:
    """One file on its way to the viewer."""

    def __init__(self, flow: Sending, fd: int, name: str) -> None:
        self.flow, self.fd, self.name = flow, fd, name
        self.pacer = Pacer()
        self.credit = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def on_credit(self, message: XferCredit, now: float) -> None:
        """The viewer gave credit back: the flow and the pacer learn it, the pump wakes."""
        self.flow.on_credit(message)
        self.pacer.on_credit(message.chunks, now)
        self.credit.set()

    async def pump(self, send: Send) -> tuple[str, str]:
        """Send the whole file, then ``xfer_end``; ``("ok", sha256)``. If the file cannot be
        read (or shrank), ``xfer_cancel`` instead, and ``("failed: why", "")``."""
        flow, pacer = self.flow, self.pacer
        try:
            while flow.remaining > 0:
                step = min(pacer.chunk_size(), flow.remaining)
                # Credit, and the pacer: at most a round trip and one frame of queue ahead of
                # this viewer's screen updates on the same link.
                while flow.credit == 0 or not pacer.allows(step):
                    self.credit.clear()
                    await self.credit.wait()
                data = os.read(self.fd, step)
                if not data:
                    raise OSError("the file shrank while it was sent")
                await send(flow.chunk(data))
                pacer.on_sent(len(data), time.monotonic())
                await asyncio.sleep(0)  # let updates and input through between chunks
            end = flow.end()
            await send(end)
            return "ok", end.sha256
        except OSError as exc:
            await send(XferCancel(flow.id, "the host could not read the file"))
            return f"failed: {exc.strerror or exc}", ""

    async def stop(self) -> None:
        """Cancel the pump, if it runs, and wait for it."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def close(self) -> None:
        """Close the file's descriptor, once (a second call does nothing: the number may be
        another file's by then)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
