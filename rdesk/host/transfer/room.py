"""One viewer's file transfers on the host: policy, the folder, flow control, the audit.

:class:`TransferRoom` is made by the viewer's connection and fed its ``xfer_*`` messages
(:meth:`TransferRoom.handle`); it answers through the ``send`` it was given and reports every
transfer's outcome through ``event`` (who, direction, file, size, SHA-256, result). When the
viewer goes, for any reason, :meth:`TransferRoom.close` removes every partial upload and closes
every descriptor it opened.

Flow control (rdesk/protocol/transfer.py): an upload's credit is given back only once its
chunks are written; a download (:class:`~rdesk.host.transfer.download.Download`) sends a
chunk only against the viewer's credit and its pacer, so a viewer that stops reading leaves
one window (16 chunks) in flight and the host holds nothing more. What is allowed at all is
the policy's (rdesk/host/transfer/policy.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable

from rdesk.host.transfer.download import Download
from rdesk.host.transfer.folder import SHARED_FOLDERS, FolderError, Incoming, TransferFolder
from rdesk.host.transfer.policy import TransferPolicy
from rdesk.protocol.access import Access
from rdesk.protocol.errors import RemoteProtocolError
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
)

__all__ = ["MAX_ACTIVE", "MAX_LISTING", "TransferRoom"]

#: Transfers one viewer may run at once.
MAX_ACTIVE = 4
#: Files a listing shows at most.
MAX_LISTING = 1000
#: Finished ids remembered, so chunks already in flight when the host ended a transfer are
#: dropped quietly rather than taken for a protocol error.
_FINISHED_MEMORY = 64

Send = Callable[[object], Awaitable[None]]
Event = Callable[..., None]
#: Asks the host's user about one transfer ``(direction, file, size)``: ``None`` if granted,
#: else the reason for the viewer (refused, not answered in time).
Ask = Callable[[str, str, int], Awaitable[str | None]]
XferMessage = XferList | XferPut | XferGet | XferData | XferCredit | XferEnd | XferCancel


class _Upload:
    def __init__(self, flow: Receiving, file: Incoming) -> None:
        self.flow, self.file = flow, file


class TransferRoom:
    """One viewer's transfers. ``folder`` is opened lazily: a host that never transfers
    never creates its folder."""

    def __init__(self, policy: TransferPolicy, viewer_id: int, viewer_name: str, access: Access,
                 send: Send, event: Event,
                 folder: Callable[[], TransferFolder] | None = None,
                 ask: Ask | None = None) -> None:
        self.policy = policy
        self.viewer_id, self.viewer_name, self.access = viewer_id, viewer_name, access
        self._send, self._event = send, event
        self._open_folder = folder or (
            lambda: SHARED_FOLDERS.acquire(policy.folder, policy.overwrite))
        self._folder: TransferFolder | None = None
        self._owns_folder = folder is None
        self._uploads: dict[int, _Upload] = {}
        self._downloads: dict[int, Download] = {}
        self._finished: deque[int] = deque(maxlen=_FINISHED_MEMORY)
        #: With ``--consent ask``: puts and gets wait for the host's user, one at a time, in
        #: tasks of their own (the viewer's input and acks keep flowing meanwhile).
        self._ask = ask
        self._asking: dict[int, tuple[asyncio.Task[None], XferPut | XferGet]] = {}
        self._question = asyncio.Lock()
        #: Bytes moved (or reserved by accepted transfers) in this session.
        self.session_bytes = 0

    # --- entry points --------------------------------------------------------------------------

    async def handle(self, message: XferMessage) -> None:
        """Act on one message from the viewer; a broken rule raises RemoteProtocolError."""
        if self._ask is not None and isinstance(message, (XferPut, XferGet)):
            self._start_asking(message)
        elif isinstance(message, XferPut):
            await self._put(message)
        elif isinstance(message, XferGet):
            await self._get(message)
        elif isinstance(message, XferList):
            await self._list(message)
        elif isinstance(message, XferData):
            await self._data(message)
        elif isinstance(message, XferEnd):
            await self._end(message)
        elif isinstance(message, XferCredit):
            download = self._downloads.get(message.id)
            if download is not None:
                download.on_credit(message, time.monotonic())
            else:
                self._unknown(message.id, "xfer_credit")
        elif isinstance(message, XferCancel):
            await self._cancelled(message)

    async def close(self) -> None:
        """The viewer is gone: abort every transfer, remove partial files, close descriptors."""
        tasks = [task for task, _ in self._asking.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for upload_id, upload in list(self._uploads.items()):
            upload.file.abort()
            self._audit("upload", upload.file.wanted, upload.flow.received, "",
                        "aborted: viewer left")
            del self._uploads[upload_id]
        for download_id in list(self._downloads):
            await self._stop_download(download_id, "aborted: viewer left")
        if self._folder is not None and self._owns_folder:
            SHARED_FOLDERS.release(self._folder)
        self._folder = None

    # --- the host's user's consent (--consent ask) ------------------------------------------

    def _start_asking(self, message: XferPut | XferGet) -> None:
        if message.id in self._asking:
            raise RemoteProtocolError(f"transfer id {message.id} is already in use")
        task = asyncio.create_task(self._asked(message),
                                   name=f"viewer-{self.viewer_id}-xfer-{message.id}-consent")
        self._asking[message.id] = (task, message)

    async def _asked(self, message: XferPut | XferGet) -> None:
        """Ask the host's user (after the policy: nobody is asked about what it refuses), then
        run the transfer as without consent, or refuse it with the reason."""
        assert self._ask is not None
        upload = isinstance(message, XferPut)
        direction = "upload" if upload else "download"
        size = message.size if isinstance(message, XferPut) else self._size_of(message.name)
        reason = self._refusal(message.id, direction, asking=True)
        if reason is None and upload:
            reason = self._cap_refusal(size)
        if reason is None:
            async with self._question:  # one question per viewer at a time
                reason = await self._ask(direction, message.name, size)
        del self._asking[message.id]
        if reason is not None:
            await self._refuse(message.id, direction, message.name, size, reason)
        elif isinstance(message, XferPut):
            await self._put(message)
        else:
            await self._get(message)

    def _size_of(self, name: str) -> int:
        """The size the question shows for a download (0 if the file cannot be opened: the
        download then fails as it would have)."""
        try:
            fd, size = self._folder_now().open_read(name)
        except FolderError:
            return 0
        os.close(fd)
        return size

    # --- uploads -------------------------------------------------------------------------------

    async def _put(self, message: XferPut) -> None:
        name = message.name
        reason = self._refusal(message.id, "upload")
        reason = reason or self._cap_refusal(message.size)
        incoming: Incoming | None = None
        if reason is None:
            try:
                folder = self._folder_now()
                if message.size + self.policy.disk_reserve > folder.free_bytes():
                    raise FolderError("not enough free space on the host's disk")
                incoming = folder.create(name)
            except FolderError as exc:
                reason = str(exc)
        if incoming is None:
            await self._refuse(message.id, "upload", name, message.size, reason or "refused")
            return
        flow = Receiving(message.id, message.size)
        self._uploads[message.id] = _Upload(flow, incoming)
        self.session_bytes += message.size
        await self._send(XferReady(message.id, name, message.size))
        credit = flow.initial_credit()
        if credit is not None:
            await self._send(credit)

    async def _data(self, message: XferData) -> None:
        upload = self._uploads.get(message.id)
        if upload is None:
            self._unknown(message.id, "xfer_data")
            return
        data = upload.flow.on_data(message)
        try:
            upload.file.write(data)
        except FolderError as exc:
            await self._fail_upload(message.id, str(exc))
            return
        credit = upload.flow.stored()
        if credit is not None:
            await self._send(credit)

    async def _end(self, message: XferEnd) -> None:
        upload = self._uploads.get(message.id)
        if upload is None:
            self._unknown(message.id, "xfer_end")
            return
        problem = upload.flow.on_end(message)
        if problem is not None:
            await self._fail_upload(message.id, problem)
            return
        try:
            final = await asyncio.to_thread(upload.file.commit)
        except FolderError as exc:
            await self._fail_upload(message.id, str(exc))
            return
        self._forget(message.id)
        size, sha = upload.flow.received, upload.flow.sha256
        self._audit("upload", final, size, sha, "ok")
        await self._send(XferDone(message.id, True, final, size, sha, ""))

    async def _fail_upload(self, upload_id: int, reason: str) -> None:
        upload = self._uploads[upload_id]
        upload.file.abort()
        self._forget(upload_id)
        self._audit("upload", upload.file.wanted, upload.flow.received, "", f"failed: {reason}")
        await self._send(XferDone(upload_id, False, upload.file.wanted, upload.flow.received,
                                  "", reason))

    # --- downloads and the listing -------------------------------------------------------------

    async def _get(self, message: XferGet) -> None:
        reason = self._refusal(message.id, "download")
        fd = size = None
        if reason is None:
            try:
                fd, size = self._folder_now().open_read(message.name)
            except FolderError as exc:
                reason = str(exc)
        if reason is None and fd is not None and size is not None:
            reason = self._cap_refusal(size)
            if reason is not None:
                os.close(fd)
        if reason is not None or fd is None or size is None:
            await self._refuse(message.id, "download", message.name, 0, reason or "refused")
            return
        self.session_bytes += size
        download = Download(Sending(message.id, size), fd, message.name)
        self._downloads[message.id] = download
        await self._send(XferReady(message.id, message.name, size))
        download.task = asyncio.create_task(self._pump(message.id, download),
                                            name=f"viewer-{self.viewer_id}-xfer-{message.id}")

    async def _pump(self, download_id: int, download: Download) -> None:
        """Send the file (:meth:`Download.pump`); then forget it and audit the outcome."""
        result, sha = await download.pump(self._send)
        self._close_download(download_id)
        self._audit("download", download.name, download.flow.sent, sha, result)

    async def _stop_download(self, download_id: int, result: str) -> None:
        download = self._downloads.get(download_id)
        if download is None:
            return
        await download.stop()
        self._close_download(download_id)
        self._audit("download", download.name, download.flow.sent, "", result)

    def _close_download(self, download_id: int) -> None:
        download = self._downloads.pop(download_id, None)
        if download is not None:
            download.close()
            self._finished.append(download_id)

    async def _list(self, message: XferList) -> None:
        reason = self._refusal(message.id, "list")
        entries: list[tuple[str, int]] = []
        if reason is None:
            try:
                entries = self._folder_now().listing(MAX_LISTING)
            except (FolderError, OSError) as exc:
                reason = str(exc) if isinstance(exc, FolderError) else "cannot list the folder"
        for name, size in entries:
            await self._send(XferEntry(message.id, name, size))
        await self._send(XferDone(message.id, reason is None, "", len(entries), "",
                                  reason or ""))

    # --- shared --------------------------------------------------------------------------------

    async def _cancelled(self, message: XferCancel) -> None:
        reason = f"cancelled by the viewer: {message.reason}"[:200]
        if message.id in self._asking:
            task, asked = self._asking.pop(message.id)
            task.cancel()
            direction = "upload" if isinstance(asked, XferPut) else "download"
            self._audit(direction, asked.name, 0, "", reason)
            self._finished.append(message.id)
        elif message.id in self._uploads:
            upload = self._uploads[message.id]
            upload.file.abort()
            self._forget(message.id)
            self._audit("upload", upload.file.wanted, upload.flow.received, "", reason)
        elif message.id in self._downloads:
            await self._stop_download(message.id, reason)
        else:
            self._unknown(message.id, "xfer_cancel")

    def _refusal(self, transfer_id: int, direction: str, *, asking: bool = False
                 ) -> str | None:
        """Why a transfer may not start (``asking``: it is one of those waiting for consent)."""
        if transfer_id in self._uploads or transfer_id in self._downloads or (
                transfer_id in self._asking and not asking):
            raise RemoteProtocolError(f"transfer id {transfer_id} is already in use")
        others = len(self._asking) - (1 if asking else 0)
        if len(self._uploads) + len(self._downloads) + others >= MAX_ACTIVE:
            return f"at most {MAX_ACTIVE} transfers at once"
        return self.policy.refusal(self.access, "download" if direction == "list" else direction)

    async def _refuse(self, transfer_id: int, direction: str, name: str, size: int,
                      reason: str) -> None:
        self._finished.append(transfer_id)
        self._audit(direction, name, size, "", f"refused: {reason}")
        await self._send(XferDone(transfer_id, False, name if _printable(name) else "", size,
                                  "", reason[:256]))

    def _cap_refusal(self, size: int) -> str | None:
        if size > self.policy.max_file:
            return f"the file is larger than this host's cap of {self.policy.max_file} bytes"
        if self.session_bytes + size > self.policy.max_session:
            return f"this session's transfer cap of {self.policy.max_session} bytes is used up"
        return None

    def _unknown(self, transfer_id: int, kind: str) -> None:
        """A message for no transfer: late chunks of one the host ended are fine, others not."""
        if transfer_id not in self._finished:
            raise RemoteProtocolError(f"{kind} for unknown transfer {transfer_id}")

    def _forget(self, upload_id: int) -> None:
        self._uploads.pop(upload_id, None)
        self._finished.append(upload_id)

    def _folder_now(self) -> TransferFolder:
        if self._folder is None:
            self._folder = self._open_folder()
        return self._folder

    def _audit(self, direction: str, file: str, size: int, sha256: str, result: str) -> None:
        shown = ascii(file)[1:-1][:200]  # escaped: a name never forges a log line
        # ``reason`` repeats it all in one line: the audit log keeps it for any kind.
        digest = f", sha256 {sha256}" if sha256 else ""
        self._event("transfer", viewer=self.viewer_id, name=self.viewer_name,
                    role=self.access.value, direction=direction, file=shown, size=size,
                    sha256=sha256, result=result,
                    reason=f"{direction} {result}: {shown} ({size} bytes{digest})")


def _printable(name: str) -> bool:
    return name.isprintable() and len(name.encode("utf-8", "surrogatepass")) <= 255
