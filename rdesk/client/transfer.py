"""File transfer on the viewer's side: :class:`Transfers` over a running :class:`Connection`.

``put`` sends a local file into the host's transfer folder and returns only once the host
confirmed the SHA-256 of what it stored; ``get`` fetches a file of that folder into a local
unnamed file (``O_TMPFILE``; a hidden temporary where the file system has none), checks size and
SHA-256, fsyncs, then links it under its final name (never replacing one): a viewer killed in
the middle leaves nothing behind; ``listing`` lists the folder. Each obeys the same flow
control as the host (rdesk/protocol/transfer.py): a put sends only against the host's credit,
a get grants credit only for what it has written. The host can attack a viewer too: every name
it sends is checked, a listing is bounded, and a message for a transfer never started ends the
connection.

Cancelling the task running a transfer sends ``xfer_cancel`` and removes any partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from rdesk.client.parts import abort
from rdesk.client.running import Connection
from rdesk.common.files import link_unnamed, open_unnamed
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.pacer import Pacer
from rdesk.protocol.transfer import (
    Receiving,
    Sending,
    XferCancel,
    XferCredit,
    XferData,
    XferDone,
    XferEnd,
    XferEntry,
    XferGet,
    XferList,
    XferPut,
    XferReady,
    check_name,
)

__all__ = ["MAX_LISTING", "Meter", "Progress", "TransferError", "Transfers"]

#: Entries a listing may hold; a host sending more is refused.
MAX_LISTING = 1000
#: Messages one transfer may have waiting: within credit a host cannot exceed the window,
#: and a listing is bounded; more is a hostile host.
_MAX_QUEUED = MAX_LISTING + 64

T = TypeVar("T")

#: ``progress(done_bytes, total_bytes)``, called after each chunk.
Progress = Callable[[int, int], None]


class TransferError(Exception):
    """A transfer refused or failed; ``str()`` is one line, the host's reason when it gave one."""


class Transfers:
    """The file transfers of one connection. Create one per connection; it hooks itself in."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._ids = itertools.count(1)
        self._queues: dict[int, asyncio.Queue[object]] = {}
        self._finished: deque[int] = deque(maxlen=64)
        conn.transfer_handler = self._on_message

    async def _on_message(self, message: object) -> None:
        transfer_id = getattr(message, "id", None)
        queue = self._queues.get(transfer_id) if isinstance(transfer_id, int) else None
        if queue is None:
            if transfer_id in self._finished:
                return  # late messages of a transfer we ended
            raise RemoteProtocolError(f"{getattr(message, 'T', '?')} for no transfer")
        if queue.qsize() >= _MAX_QUEUED:
            raise RemoteProtocolError("the host sent more than a transfer may hold")
        queue.put_nowait(message)

    # --- the three operations ------------------------------------------------------------------

    async def listing(self) -> list[tuple[str, int]]:
        """The regular files of the host's transfer folder: ``(name, size)``."""
        return await self._guarded(self._listing())

    async def put(self, path: Path, name: str | None = None,
                  progress: Progress | None = None) -> XferDone:
        """Upload ``path`` as ``name`` (default: its own name); the host's confirmation.

        Raises :class:`TransferError` if the host refused it, failed, or confirmed another
        digest than the one of the bytes sent.
        """
        return await self._guarded(self._put(path, name, progress))

    async def get(self, name: str, dest: Path, progress: Progress | None = None
                  ) -> tuple[int, str]:
        """Download ``name`` to ``dest`` (which must not exist); ``(size, sha256)``."""
        return await self._guarded(self._get(name, dest, progress))

    async def _guarded(self, work: Awaitable[T]) -> T:
        """Run one operation; a host breaking the protocol closes the connection with the
        reason and fails the operation with :class:`TransferError` (never a traceback)."""
        try:
            return await work
        except RemoteProtocolError as exc:
            await abort(self.conn.ws, self.conn.session, exc.code, exc.reason)
            raise TransferError(f"the host broke the transfer protocol: {exc.reason}") from None

    async def _listing(self) -> list[tuple[str, int]]:
        transfer_id, queue = self._open()
        try:
            await self.conn.send_transfer(XferList(transfer_id))
            entries: list[tuple[str, int]] = []
            while True:
                message = await self._next(queue)
                if isinstance(message, XferEntry):
                    if check_name(message.name) is None:  # a host's odd name is not shown
                        entries.append((message.name, message.size))
                    if len(entries) > MAX_LISTING:
                        raise RemoteProtocolError("the host's listing is too long")
                elif isinstance(message, XferDone):
                    if not message.ok:
                        raise TransferError(message.reason or "listing refused")
                    return entries
                else:
                    raise RemoteProtocolError(f"unexpected {getattr(message, 'T', '?')}")
        finally:
            self._close(transfer_id)

    async def _put(self, path: Path, name: str | None, progress: Progress | None) -> XferDone:
        name = path.name if name is None else name
        reason = check_name(name)
        if reason is not None:
            raise TransferError(f"{name!r}: {reason}")
        transfer_id, queue = self._open()
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            flow = Sending(transfer_id, size)
            try:
                await self.conn.send_transfer(XferPut(transfer_id, name, size))
                first = await self._next(queue)
                if isinstance(first, XferDone):
                    raise TransferError(first.reason or "refused")
                if not isinstance(first, XferReady):
                    raise RemoteProtocolError(f"unexpected {getattr(first, 'T', '?')}")
                pacer = Pacer()
                while flow.remaining:
                    step = min(pacer.chunk_size(), flow.remaining)
                    # Credit, and the pacer: no more in flight than the link carries in a
                    # round trip and one frame, so this viewer's own keys do not queue behind.
                    while flow.credit == 0 or not queue.empty() or not pacer.allows(step):
                        self._on_put_message(flow, pacer, await self._next(queue))
                    data = file.read(step)
                    if not data:
                        raise TransferError(f"{path} shrank while it was sent")
                    await self.conn.send_transfer(flow.chunk(data))
                    pacer.on_sent(len(data), time.monotonic())
                    if progress is not None:
                        progress(flow.sent, size)
                end = flow.end()
                await self.conn.send_transfer(end)
                while True:
                    message = await self._next(queue)
                    if isinstance(message, XferDone):
                        break
                    self._on_put_message(flow, pacer, message)
            except BaseException:
                if transfer_id in self._queues:
                    with contextlib.suppress(Exception):
                        await self.conn.send_transfer(XferCancel(transfer_id, "cancelled"))
                raise
            finally:
                self._close(transfer_id)
        if not message.ok:
            raise TransferError(message.reason or "the host did not store the file")
        if message.sha256 != end.sha256 or message.size != size:
            raise TransferError("the host confirmed another SHA-256 than the one sent")
        return message

    def _on_put_message(self, flow: Sending, pacer: Pacer, message: object) -> None:
        if isinstance(message, XferCredit):
            flow.on_credit(message)
            pacer.on_credit(message.chunks, time.monotonic())
        elif isinstance(message, XferDone):
            raise TransferError(message.reason or "the host stopped the transfer")
        elif isinstance(message, XferCancel):
            raise TransferError(message.reason or "the host cancelled the transfer")
        else:
            raise RemoteProtocolError(f"unexpected {getattr(message, 'T', '?')} in an upload")

    async def _get(self, name: str, dest: Path, progress: Progress | None
                   ) -> tuple[int, str]:
        reason = check_name(name)
        if reason is not None:
            raise TransferError(f"{name!r}: {reason}")
        if dest.exists() or dest.is_symlink():
            raise TransferError(f"{dest} exists: not overwritten")
        transfer_id, queue = self._open()
        temp = dest.parent / f".{dest.name[:200]}.rdesk-part-{secrets.token_hex(4)}"
        fd: int | None = None
        try:
            await self.conn.send_transfer(XferGet(transfer_id, name))
            first = await self._next(queue)
            if isinstance(first, XferDone):
                raise TransferError(first.reason or "refused")
            if not isinstance(first, XferReady):
                raise RemoteProtocolError(f"unexpected {getattr(first, 'T', '?')}")
            flow = Receiving(transfer_id, first.size)
            # Unnamed while it is written (a killed viewer leaves nothing in the folder);
            # a hidden name only where the file system has no unnamed files.
            fd = open_unnamed(dest.parent)
            unnamed = fd is not None
            if fd is None:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600)
            credit = flow.initial_credit()
            if credit is not None:
                await self.conn.send_transfer(credit)
            while True:
                message = await self._next(queue)
                if isinstance(message, XferData):
                    data = flow.on_data(message)
                    os.write(fd, data)
                    if progress is not None:
                        progress(flow.received, flow.size)
                    credit = flow.stored()
                    if credit is not None:
                        await self.conn.send_transfer(credit)
                elif isinstance(message, XferEnd):
                    problem = flow.on_end(message)
                    if problem is not None:
                        raise TransferError(problem)
                    break
                elif isinstance(message, (XferCancel, XferDone)):
                    raise TransferError(message.reason or "the host stopped the transfer")
                else:
                    raise RemoteProtocolError(f"unexpected {getattr(message, 'T', '?')}")
            os.fsync(fd)
            try:  # a link fails rather than replace
                if unnamed:
                    link_unnamed(fd, dest)
                else:
                    os.link(temp, dest, follow_symlinks=False)
            except FileExistsError:
                raise TransferError(f"{dest} appeared meanwhile: not overwritten") from None
            return flow.size, flow.sha256
        except BaseException:
            if transfer_id in self._queues:
                with contextlib.suppress(Exception):
                    await self.conn.send_transfer(XferCancel(transfer_id, "cancelled"))
            raise
        finally:
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            self._close(transfer_id)

    # --- bookkeeping ---------------------------------------------------------------------------

    def _open(self) -> tuple[int, asyncio.Queue[object]]:
        transfer_id = next(self._ids) & 0xFFFFFFFF
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._queues[transfer_id] = queue
        return transfer_id, queue

    def _close(self, transfer_id: int) -> None:
        if self._queues.pop(transfer_id, None) is not None:
            self._finished.append(transfer_id)

    async def _next(self, queue: asyncio.Queue[object]) -> object:
        """The next message of a transfer, or :class:`TransferError` once the connection ends."""
        closed = self.conn.closed
        if closed.done():
            raise TransferError(str(closed.result()))
        getter = asyncio.ensure_future(queue.get())
        waiting: set[asyncio.Future[Any]] = {getter, closed}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        raise TransferError(str(closed.result()))


class Meter:
    """Speed and time left of one transfer, from ``(done, now)`` samples (pure: no clock).

    The rate is the average since the start: steady enough to read, and it needs no window.
    """

    def __init__(self, total: int, now: float) -> None:
        self.total, self.start = total, now
        self.done = 0
        self.now = now

    def update(self, done: int, now: float) -> None:
        self.done, self.now = done, now

    @property
    def rate(self) -> float:
        """Bytes per second so far (0 until some time has passed)."""
        elapsed = self.now - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def left(self) -> float | None:
        """Seconds left at the current rate, ``None`` while unknown."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def line(self, label: str, width: int = 24) -> str:
        """``label [#####-----]  42%  12.3 MB/s  0:07 left``."""
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * width)
        left = "" if self.left is None else f"  {_clock(self.left)} left"
        return (f"{label[:30]} [{'#' * filled}{'-' * (width - filled)}] "
                f"{fraction * 100:3.0f}%  {self.rate / 1e6:.1f} MB/s{left}")


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if (
        seconds >= 3600) else f"{seconds // 60}:{seconds % 60:02d}"
