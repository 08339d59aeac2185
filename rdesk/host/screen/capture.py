"""Screen capture: the project's only importer of :mod:`mss`, and the choice of capturer.

The rest of the host talks to a :class:`Capturer`; tests may pass a fake with the same shape.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol, TypeVar, runtime_checkable

import mss
import mss.exception
import numpy as np
import numpy.typing as npt
from Xlib import display as xdisplay
from Xlib import error as xerror

__all__ = [
    "CaptureError",
    "Capturer",
    "MssCapturer",
    "RootCapturer",
    "SIZE_CHECK_INTERVAL",
    "display_hint",
]

log = logging.getLogger(__name__)

#: Seconds between checks of the root window's size (a round trip each). A screen that shrank
#: is noticed at once (the grab fails); one that grew, within this time.
SIZE_CHECK_INTERVAL = 0.25


class CaptureError(Exception):
    """The screen cannot be captured; ``str(exc)`` is a one-line message fit for the user."""


@runtime_checkable
class Capturer(Protocol):
    """Something that returns whole-screen frames."""

    @property
    def width(self) -> int:
        """Width in pixels of the frames :meth:`grab` currently returns."""
        ...

    @property
    def height(self) -> int:
        """Height in pixels of the frames :meth:`grab` currently returns."""
        ...

    def grab(self) -> npt.NDArray[np.uint8]:
        """Capture the whole screen now.

        Returns a fresh C-contiguous ``(height, width, 4)`` uint8 array of BGRA pixels (the
        fourth byte is padding, not meaningful alpha). The array is owned by the caller: later
        grabs never write into it, so it may be kept as the previous frame or shared between
        threads. After a screen resize grabs return the new size soon (an implementation may
        check the size only every fraction of a second) and ``width`` / ``height`` follow it.
        Raises :class:`CaptureError` if the display went away.
        """
        ...

    def close(self) -> None:
        """Release the display connection. Idempotent."""
        ...


def _open_mss(display: str | None) -> Any:
    # mss >= 10.2 spells the class mss.MSS and deprecates the mss.mss() factory; 9.x only has
    # the factory. Both accept ``display=`` on Linux.
    factory = getattr(mss, "MSS", None) or mss.mss
    kwargs: dict[str, Any] = {} if display is None else {"display": display}
    return factory(**kwargs)


def display_hint(display: str | None) -> str:
    name = display if display is not None else "$DISPLAY"
    return f"cannot open display {name} — is an X server running? try --virtual 1280x720"


_C = TypeVar("_C", bound="RootCapturer")


class RootCapturer:
    """What every X capturer here shares: a python-xlib connection to ``display``, the root
    window, its size, and context-manager use. Subclasses implement ``grab`` and ``close``."""

    _display_name: str | None
    _x: Any
    _root: Any
    _width: int
    _height: int

    def _open(self, display: str | None) -> None:
        """Connect; raises :class:`CaptureError` (one line) when the display cannot be opened."""
        self._display_name = display
        try:
            self._x = xdisplay.Display(display)
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            raise CaptureError(display_hint(display)) from exc
        self._root = self._x.screen().root

    def _root_size(self) -> tuple[int, int]:
        try:
            geom = self._root.get_geometry()
        except (xerror.XError, xerror.ConnectionClosedError, OSError) as exc:
            raise CaptureError(f"lost connection to display {self._display_name}") from exc
        return int(geom.width), int(geom.height)

    @property
    def width(self) -> int:
        """Width in pixels of the frames ``grab`` currently returns."""
        return self._width

    @property
    def height(self) -> int:
        """Height in pixels of the frames ``grab`` currently returns."""
        return self._height

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MssCapturer(RootCapturer):
    """Capture the whole X screen (the root window, all monitors) of one display with mss.

    ``display`` is an X display name such as ``":99"``; None means ``$DISPLAY``. The
    constructor raises :class:`CaptureError` when the display cannot be opened.

    A resize (e.g. ``xrandr``) is followed: the root geometry is queried on a separate light
    python-xlib connection at most every :data:`SIZE_CHECK_INTERVAL` seconds (a Python round
    trip costs about as much as a diff, so not on every grab at 60 Hz), and at once when a grab
    fails because the screen shrank; the mss instance is then re-created, because mss sizes its
    shared-memory buffer once. Not thread-safe: use one instance from one thread at a time.
    """

    def __init__(self, display: str | None = None) -> None:
        self._open(display)
        self._sct: Any = None
        self._width = 0
        self._height = 0
        self._closed = False
        self._size_checked = 0.0
        try:
            self._reopen()
        except CaptureError:
            self._x.close()
            raise

    def _reopen(self) -> None:
        if self._sct is not None:
            self._sct.close()
            self._sct = None
        try:
            self._sct = _open_mss(self._display_name)
            mon = self._sct.monitors[0]
        except mss.exception.ScreenShotError as exc:
            raise CaptureError(display_hint(self._display_name)) from exc
        self._monitor = {
            "left": int(mon["left"]),
            "top": int(mon["top"]),
            "width": int(mon["width"]),
            "height": int(mon["height"]),
        }
        self._width = self._monitor["width"]
        self._height = self._monitor["height"]

    def grab(self) -> npt.NDArray[np.uint8]:
        """Capture the whole screen; see :meth:`Capturer.grab` for the contract."""
        if self._closed:
            raise CaptureError("capturer is closed")
        now = time.monotonic()
        if now - self._size_checked >= SIZE_CHECK_INTERVAL:
            self._size_checked = now
            if self._root_size() != (self._width, self._height):
                self._reopen()
        try:
            shot = self._sct.grab(self._monitor)
        except mss.exception.ScreenShotError:
            # The screen shrank since the size was last checked: re-read the size, retry once.
            self._size_checked = time.monotonic()
            self._reopen()
            try:
                shot = self._sct.grab(self._monitor)
            except mss.exception.ScreenShotError as exc:
                raise CaptureError(f"capture failed on display {self._display_name}") from exc
        h, w = int(shot.height), int(shot.width)
        raw = shot.raw
        if isinstance(raw, bytearray):
            # mss (10.x) hands over a new bytearray per grab: wrapping it is already a copy.
            frame = np.frombuffer(raw, dtype=np.uint8)
        else:
            frame = np.array(memoryview(raw), dtype=np.uint8).reshape(-1)
        if frame.size != h * w * 4:
            raise CaptureError(f"capture returned {frame.size} bytes for {w}x{h}")
        return frame.reshape(h, w, 4)

    def close(self) -> None:
        """Release the display connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._sct is not None:
            self._sct.close()
            self._sct = None
        self._x.close()
