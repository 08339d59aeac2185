"""A viewer's ``resize``: the virtual desktop takes the size of the viewer's window.

:class:`ResizeHub` holds the policy (docs/protocol.md, "Resize"): only a virtual desktop on a
server that can resize (``--virtual --virtual-server xvnc``) does it, only for the viewer
holding control, at most once per :data:`MIN_INTERVAL` seconds — a request arriving sooner
waits for its turn and replaces any request still waiting (the last one wins; the replaced one
is answered as such). Every request gets exactly one ``resize_result``. The capture loop then
sees frames of the new size and sends every viewer ``screen`` and a full update.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from rdesk.host.screen.randr import RandrError, set_screen_size
from rdesk.protocol.resize import Resize, ResizeResult

__all__ = ["MIN_INTERVAL", "NOT_VIRTUAL", "ResizeHub", "wait_before"]

log = logging.getLogger(__name__)

#: Seconds between two resizes of the desktop (a window being dragged sends many).
MIN_INTERVAL = 0.5
#: Why a host sharing a real display refuses.
NOT_VIRTUAL = "this host shares a real display (its owner's screen); only a virtual desktop " \
    "(rdesk host --virtual) can be resized"

Answer = Callable[[ResizeResult], None]


def wait_before(last: float, now: float, interval: float = MIN_INTERVAL) -> float:
    """Seconds to wait at ``now`` before resizing again after a resize at ``last``."""
    return max(0.0, last + interval - now)


class ResizeHub:
    """Resizes ``display`` for the viewer in control (``refusal``: why it never will).

    ``size()`` is the desktop's current size (the capture's), for refusals; ``resized(w, h)``
    runs after each resize (the audit line, refreshing the monitor list).
    """

    def __init__(
        self,
        display: str,
        refusal: str | None,
        size: Callable[[], tuple[int, int]],
        resized: Callable[[int, int, int], None],
        *,
        resize: Callable[[str, int, int], tuple[int, int]] = set_screen_size,
    ) -> None:
        self.display = display
        self.refusal = refusal
        self.size = size
        self.resized = resized
        self._resize = resize
        self._last = -1e9
        self._pending: tuple[int, Resize, Answer] | None = None
        self._task: asyncio.Task[None] | None = None
        #: Resizes done (tests count them).
        self.done = 0

    def request(self, viewer_id: int, message: Resize, in_control: bool, answer: Answer) -> None:
        """Handle one ``resize`` from ``viewer_id``; ``answer`` gets its result (now, or after
        its turn)."""
        refusal = self.refusal or (
            None if in_control else "only the viewer in control may resize the desktop"
        )
        if refusal is not None:
            answer(self._result(message.id, False, refusal))
            return
        if self._pending is not None:
            _, replaced, replaced_answer = self._pending
            replaced_answer(self._result(replaced.id, False, "replaced by a later resize"))
        self._pending = (viewer_id, message, answer)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._apply(), name="resize")

    def _result(self, request_id: int, ok: bool, reason: str = "") -> ResizeResult:
        width, height = self.size()
        return ResizeResult(request_id, ok, width, height, reason[:256])

    async def _apply(self) -> None:
        while self._pending is not None:
            await asyncio.sleep(wait_before(self._last, time.monotonic()))
            pending, self._pending = self._pending, None
            if pending is None:
                return
            viewer_id, message, answer = pending
            try:
                # A few X round trips; in a thread so the encoders and input keep their loop.
                width, height = await asyncio.to_thread(
                    self._resize, self.display, message.width, message.height
                )
            except RandrError as exc:
                answer(self._result(message.id, False, str(exc)))
                continue
            finally:
                self._last = time.monotonic()
            self.done += 1
            log.info("viewer %d resized the desktop to %dx%d", viewer_id, width, height)
            self.resized(viewer_id, width, height)
            answer(ResizeResult(message.id, True, width, height))

    def close(self) -> None:
        """Cancel a waiting resize (the host is stopping)."""
        if self._task is not None:
            self._task.cancel()
