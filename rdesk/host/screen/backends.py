"""Choosing a capture backend: the one place that knows every :class:`Capturer` there is.

``auto`` takes the fastest that works on the display; ``shm`` and ``mss`` name one and fail
with its reason when it cannot work (``rdesk host --capture``).
"""

from __future__ import annotations

import logging

from rdesk.host.screen.capture import CaptureError, Capturer, MssCapturer
from rdesk.host.screen.xshm import ShmCapturer, ShmUnavailable
from rdesk.host.settings import CAPTURE_BACKENDS, CaptureBackend

__all__ = ["backend_of", "open_capturer"]

log = logging.getLogger(__name__)


def open_capturer(display: str | None = None, backend: CaptureBackend = "auto") -> Capturer:
    """A capturer for ``display``.

    ``auto``: zero-copy shared memory (:class:`ShmCapturer`) on a local X server, else mss.
    ``shm``: zero-copy only; raises :class:`CaptureError` saying why it is unavailable.
    ``mss``: the portable capturer, which copies each frame.
    Raises :class:`CaptureError` (a one-line message) when the display cannot be opened.
    """
    if backend not in CAPTURE_BACKENDS:
        raise CaptureError(f"unknown capture backend {backend!r}; choose one of auto, shm, mss")
    if backend != "mss":
        try:
            return ShmCapturer(display)
        except ShmUnavailable as exc:
            if backend == "shm":
                raise CaptureError(
                    f"zero-copy capture unavailable: {exc}; --capture mss works without it"
                ) from None
            log.info("zero-copy capture unavailable (%s); capturing with mss", exc)
    return MssCapturer(display)


def backend_of(capturer: Capturer) -> str:
    """The backend name (``shm``, ``mss``) of a capturer :func:`open_capturer` made; for any
    other object, its class name."""
    if isinstance(capturer, ShmCapturer):
        return "shm"
    if isinstance(capturer, MssCapturer):
        return "mss"
    return type(capturer).__name__
