"""Choosing a capture backend: the one place that knows every :class:`Capturer` there is.

``auto`` takes the fastest that works on the display; ``shm`` and ``mss`` name one and fail
with its reason when it cannot work (``rdesk host --capture``).
"""

from __future__ import annotations

import logging
from typing import Literal

from rdesk.host.screen.capture import CaptureError, Capturer, MssCapturer
from rdesk.host.screen.xshm import ShmCapturer, ShmUnavailable

__all__ = ["BACKENDS", "Backend", "open_capturer"]

log = logging.getLogger(__name__)

Backend = Literal["auto", "shm", "mss"]
#: The names ``--capture`` accepts, in the order ``auto`` tries them.
BACKENDS: tuple[Backend, ...] = ("auto", "shm", "mss")


def open_capturer(display: str | None = None, backend: Backend = "auto") -> Capturer:
    """A capturer for ``display``.

    ``auto``: zero-copy shared memory (:class:`ShmCapturer`) on a local X server, else mss.
    ``shm``: zero-copy only; raises :class:`CaptureError` saying why it is unavailable.
    ``mss``: the portable capturer, which copies each frame.
    Raises :class:`CaptureError` (a one-line message) when the display cannot be opened.
    """
    if backend not in BACKENDS:
        raise CaptureError(f"unknown capture backend {backend!r}; choose one of auto, shm, mss")
    if backend != "mss":
        try:
            return ShmCapturer(display)
        except ShmUnavailable as exc:
            if backend == "shm":
                raise CaptureError(f"zero-copy capture unavailable: {exc}") from None
            log.info("zero-copy capture unavailable (%s); capturing with mss", exc)
    return MssCapturer(display)
