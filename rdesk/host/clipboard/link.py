"""One viewer's clipboard on the host: its ``clip_*`` messages, the policy, the cap, the audit.

:class:`ClipboardLink` is made by the viewer's connection and fed its clipboard messages
(:meth:`ClipboardLink.handle`). Everything it sends the viewer goes through one sender task, in
order, so two texts never interleave their chunks (the receiver holds one offer open at a
time) and a text being sent never holds up screen updates or input for longer than one chunk
at a time: the update sender and the input handler run as other tasks. When the host's text
changes faster than a viewer takes it, only the latest waits to be sent.

Audit (``event("clipboard", …)``): direction, selection, size in bytes, viewer, result; never
the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable

from rdesk.host.clipboard.hub import ClipboardHub
from rdesk.host.clipboard.policy import may_read_host, may_write_host
from rdesk.protocol.access import Access
from rdesk.protocol.clipboard import (
    Assembler,
    ClipData,
    ClipGet,
    ClipOffer,
    ClipResult,
    chunks,
    refusal,
)

__all__ = ["ClipboardLink"]

_UNAVAILABLE = "the clipboard is not available on this host"


class ClipboardLink:
    """The clipboard of viewer ``viewer_id`` (``access``), on ``hub`` (``None``: no clipboard).

    ``send`` writes one message to the viewer.
    """

    def __init__(
        self,
        hub: ClipboardHub | None,
        viewer_id: int,
        access: Access,
        send: Callable[[object], Awaitable[None]],
    ) -> None:
        self.hub = hub
        self.viewer_id = viewer_id
        self.access = access
        self._send = send
        self._assembler = Assembler(hub.cap if hub is not None else 0)
        #: Pending texts for the viewer: (offer id, selection, text).
        self._queue: deque[tuple[int, str, str]] = deque()
        self._wake = asyncio.Event()
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    # --- lifetime ------------------------------------------------------------------------------

    def open(self) -> None:
        """Join the hub and start the sender (on the running loop)."""
        if self.hub is None:
            return
        self.hub.join(self)
        self._task = asyncio.create_task(self._sender(), name=f"viewer-{self.viewer_id}-clip")

    async def close(self) -> None:
        """Leave the hub and stop the sender; idempotent."""
        if self.hub is not None:
            self.hub.leave(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- the host's text, out to this viewer ---------------------------------------------------

    def push(self, selection: str, text: str) -> None:
        """The host's ``selection`` changed: send it if the policy lets this viewer have it."""
        hub = self.hub
        if hub is None or may_read_host(hub.policy, self.access) is not None:
            return
        # Only the latest push waits: an older one not yet started is replaced.
        kept = [item for item in self._queue if item[0] != 0 or item[1] != selection]
        self._queue = deque(kept)
        self._queue.append((0, selection, text))
        self._wake.set()

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                offer_id, selection, text = self._queue.popleft()
                if offer_id == 0:
                    offer_id = 0x80000000 | next(self._ids)  # host-chosen ids: top bit set
                for message in chunks(offer_id, text, selection):
                    await self._send(message)
                self._audit("to-viewer", selection, len(text.encode("utf-8")), "sent")

    # --- this viewer's messages ----------------------------------------------------------------

    async def handle(self, message: object) -> None:
        """Act on one ``clip_*`` message; raises ``RemoteProtocolError`` for broken framing."""
        if isinstance(message, ClipOffer):
            reason = (
                self._write_refusal(message.selection) or self._assembler.offer(message)
            )
            if reason is not None:
                self._audit("to-host", message.selection, message.size, reason)
                await self._send(ClipResult(message.id, False, reason))
        elif isinstance(message, ClipData):
            done = self._assembler.data(message)
            if done is None:
                return
            offer, text, reason = done
            if text is not None and self.hub is not None:
                self.hub.from_viewer(self, offer.selection, text)
            self._audit("to-host", offer.selection, offer.size, reason or "ok")
            await self._send(ClipResult(offer.id, reason is None, reason or ""))
        elif isinstance(message, ClipGet):
            await self._get(message)
        # A ClipResult answers one of our offers: a refusal is the viewer's own business.

    async def _get(self, message: ClipGet) -> None:
        hub = self.hub
        reason = self._selection_refusal(message.selection) or (
            None if hub is None else may_read_host(hub.policy, self.access))
        if reason is None and hub is not None:
            text = hub.current.get(message.selection)
            if text is None:
                reason = f"the host's {message.selection} holds no text"
            else:
                reason = refusal(text, hub.cap)
                if reason is None:
                    self._queue.append((message.id, message.selection, text))
                    self._wake.set()
                    return
        assert reason is not None
        self._audit("to-viewer", message.selection, 0, reason)
        await self._send(ClipResult(message.id, False, reason))

    def _selection_refusal(self, selection: str) -> str | None:
        """Why ``selection`` cannot be read or written here at all, or None."""
        if self.hub is None:
            return _UNAVAILABLE
        if selection not in self.hub.selections:
            return f"this host does not sync the {selection} selection (--clipboard-primary)"
        return None

    def _write_refusal(self, selection: str) -> str | None:
        reason = self._selection_refusal(selection)
        if reason is not None or self.hub is None:
            return reason
        return may_write_host(self.hub.policy, self.access)

    def _audit(self, direction: str, selection: str, size: int, result: str) -> None:
        if self.hub is not None:
            self.hub.event(
                "clipboard", viewer=self.viewer_id, direction=direction, selection=selection,
                size=size, reason=result,
            )  # fmt: skip
