"""One monitor of the host's screen, or all (``rdesk host --monitor N|all``).

The monitors are RandR 1.5's (what ``xrandr --listmonitors`` shows; on Xvfb they can be made
with ``xrandr --setmonitor``). Sharing monitor N means three things follow its rectangle:

* **capture**: :class:`MonitorCapturer` wraps the screen's capturer and returns only that
  rectangle, so the tile diff, the encoders and the viewers see a screen of the monitor's size;
* **input**: :class:`MonitorInput` wraps the injector and moves viewers' pointer and wheel
  coordinates (monitor pixels) to root pixels;
* **changes**: X DAMAGE still watches the whole screen; the diff finds what changed inside.

:class:`MonitorView` holds the rectangle both wrappers read; :meth:`MonitorView.select`
switches it while viewers are connected (the capture loop sees a new size and tells them).
"""

from __future__ import annotations

import dataclasses
import logging
import select
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from rdesk.common.xthread import ConnectionThread
from rdesk.host.screen.capture import CaptureError, Capturer
from rdesk.protocol.monitors import ALL, MAX_MONITORS, MonitorCurrent, MonitorInfo

__all__ = [
    "Monitor",
    "MonitorCapturer",
    "MonitorError",
    "MonitorHub",
    "MonitorInput",
    "MonitorView",
    "MonitorWatcher",
    "list_monitors",
    "read_monitors",
]

#: How often :class:`MonitorWatcher` reads the display's monitors (seconds).
WATCH_SECONDS = 2.0


log = logging.getLogger(__name__)


class MonitorError(CaptureError):
    """No such monitor; ``str()`` is one line (a kind of :class:`CaptureError`: what to
    capture cannot be had)."""


@dataclasses.dataclass(frozen=True)
class Monitor:
    """One RandR monitor: its place on the root window, in pixels."""

    index: int
    name: str
    x: int
    y: int
    width: int
    height: int
    primary: bool = False

    def __str__(self) -> str:
        return f"{self.index}: {self.name} {self.width}x{self.height}+{self.x}+{self.y}"


def list_monitors(display: str) -> list[Monitor]:
    """``display``'s RandR 1.5 monitors in the server's order (the whole screen as one
    monitor where the server has no RandR 1.5)."""
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display)
    try:
        return read_monitors(conn)
    finally:
        conn.close()


def read_monitors(conn: Any) -> list[Monitor]:
    """:func:`list_monitors` on an open python-xlib connection ``conn``."""
    screen = conn.screen()
    # The root's size as the server has it now (the connection's setup data is from its start).
    geometry = screen.root.get_geometry()
    whole = [Monitor(0, "screen", 0, 0, geometry.width, geometry.height)]
    if not conn.has_extension("RANDR"):
        return whole
    try:
        version = conn.xrandr_query_version()
        if (version.major_version, version.minor_version) < (1, 5):
            return whole
        reply: Any = screen.root.xrandr_get_monitors()
    except Exception as exc:  # an X error: share the screen as one monitor
        log.info("no RandR monitors (%s): the whole screen is one", exc)
        return whole
    found = [
        Monitor(i, conn.get_atom_name(m.name) or f"monitor-{i}", m.x, m.y,
                m.width_in_pixels, m.height_in_pixels, bool(m.primary))
        for i, m in enumerate(reply.monitors)
    ]  # fmt: skip
    return found or whole


class MonitorView:
    """The rectangle of the root window being shared: a monitor, or ``None`` for all."""

    def __init__(self, monitors: list[Monitor], chosen: int | None) -> None:
        self.monitors = monitors
        self.current: Monitor | None = None
        self.select(chosen)

    def select(self, index: int | None) -> Monitor | None:
        """Share monitor ``index`` (``None``: the whole screen); raise :class:`MonitorError`
        for a number the display does not have."""
        if index is None:
            self.current = None
            return None
        if not 0 <= index < len(self.monitors):
            listing = ", ".join(str(m) for m in self.monitors)
            raise MonitorError(
                f"--monitor {index}: this display has {len(self.monitors)} monitor(s): {listing}"
            )
        self.current = self.monitors[index]
        return self.current

    def offset(self) -> tuple[int, int]:
        current = self.current
        return (0, 0) if current is None else (current.x, current.y)


class MonitorCapturer:
    """``inner``'s frames cut to ``view``'s rectangle (a :class:`Capturer`)."""

    def __init__(self, inner: Capturer, view: MonitorView) -> None:
        self.inner = inner
        self.view = view

    @property
    def connection(self) -> Any:
        """The inner capturer's X connection, if it has one (X DAMAGE shares it)."""
        return getattr(self.inner, "connection", None)

    @property
    def xcb(self) -> Any:
        """The inner capturer's xcb link, if it grabs through one (X DAMAGE must use it)."""
        return getattr(self.inner, "xcb", None)

    @property
    def root_id(self) -> Any:
        return getattr(self.inner, "root_id", None)

    def _box(self, width: int, height: int) -> tuple[int, int, int, int]:
        current = self.view.current
        if current is None:
            return 0, 0, width, height
        # Clipped to the screen: a monitor may stick out past it (xrandr allows that).
        x0, y0 = min(max(current.x, 0), width - 1), min(max(current.y, 0), height - 1)
        x1 = max(min(current.x + current.width, width), x0 + 1)
        y1 = max(min(current.y + current.height, height), y0 + 1)
        return x0, y0, x1, y1

    @property
    def width(self) -> int:
        x0, _, x1, _ = self._box(self.inner.width, self.inner.height)
        return x1 - x0

    @property
    def height(self) -> int:
        _, y0, _, y1 = self._box(self.inner.width, self.inner.height)
        return y1 - y0

    def grab(self) -> npt.NDArray[np.uint8]:
        frame = self.inner.grab()
        x0, y0, x1, y1 = self._box(frame.shape[1], frame.shape[0])
        if (x0, y0, x1, y1) == (0, 0, frame.shape[1], frame.shape[0]):
            return frame
        return np.ascontiguousarray(frame[y0:y1, x0:x1])  # owned, C-contiguous, as promised

    def close(self) -> None:
        self.inner.close()


class MonitorInput:
    """An input sink that moves pointer and wheel coordinates by ``view``'s offset."""

    def __init__(self, inner: Any, view: MonitorView) -> None:
        self.inner = inner
        self.view = view

    def pointer(self, owner: int, x: int, y: int, buttons: int) -> None:
        dx, dy = self.view.offset()
        self.inner.pointer(owner, x + dx, y + dy, buttons)

    def wheel(self, owner: int, x: int, y: int, dx: int, dy: int) -> None:
        ox, oy = self.view.offset()
        self.inner.wheel(owner, x + ox, y + oy, dx, dy)

    def key(self, owner: int, keysym: int, down: bool) -> None:
        self.inner.key(owner, keysym, down)

    def release_all(self, owner: int) -> None:
        self.inner.release_all(owner)

    def __getattr__(self, name: str) -> Any:
        # Keys, releases, closing and whatever else the injector offers are not positional.
        return getattr(self.inner, name)


class MonitorHub:
    """Switching monitors while viewers are connected (``select_monitor``).

    Each viewer that joins is told the monitors and the current one through its ``post``
    (non-blocking). Only the viewer holding control may switch, for everyone: the capture
    loop then sees frames of the new size and sends every viewer a ``screen``.
    """

    def __init__(self, view: MonitorView) -> None:
        self.view = view
        self._posts: dict[int, Callable[[MonitorInfo | MonitorCurrent], None]] = {}

    def _current(self) -> MonitorCurrent:
        current = self.view.current
        return MonitorCurrent(ALL if current is None else current.index)

    def join(self, viewer_id: int, post: Callable[[MonitorInfo | MonitorCurrent], None]) -> None:
        self._posts[viewer_id] = post
        count = min(len(self.view.monitors), MAX_MONITORS)
        for m in self.view.monitors[:count]:
            post(MonitorInfo(m.index, count, m.name[:256], m.x, m.y, m.width, m.height,
                             m.primary))
        post(self._current())

    def leave(self, viewer_id: int) -> None:
        self._posts.pop(viewer_id, None)

    def changed(self, monitors: list[Monitor]) -> None:
        """The display's monitors are now ``monitors`` (one plugged in, unplugged, or made
        with ``xrandr --setmonitor`` while the host runs): every viewer is told the new list.
        The shared monitor stays shared while a monitor of its name is there (at its new
        number and rectangle, if they changed); if it is gone, the whole screen is shared."""
        if monitors == self.view.monitors:
            return
        current = self.view.current
        same = [m.index for m in monitors if current is not None and m.name == current.name]
        self.view.monitors = monitors
        self.view.select(same[0] if same else None)
        log.info("the display's monitors changed: %s", ", ".join(map(str, monitors)))
        for viewer_id, post in list(self._posts.items()):
            self.join(viewer_id, post)

    def refresh(self, monitors: list[Monitor]) -> None:
        """The screen changed (a resize): share the whole screen of ``monitors`` and tell
        every viewer the new list and the current one, as at a join."""
        self.view.monitors = monitors
        self.view.select(None)
        for viewer_id, post in list(self._posts.items()):
            self.join(viewer_id, post)

    def select(self, viewer_id: int, index: int, in_control: bool) -> str | None:
        """Share monitor ``index`` (``-1``: all) for everyone; the refusal's reason, or ``None``."""
        if not in_control:
            return "only the viewer in control may switch monitors"
        try:
            self.view.select(None if index == ALL else index)
        except MonitorError as exc:
            return str(exc)[:256]
        log.info("viewer %d switched to %s", viewer_id, self.view.current or "the whole screen")
        for post in list(self._posts.values()):
            post(self._current())
        return None


class MonitorWatcher(ConnectionThread):
    """Read ``display``'s monitors every :data:`WATCH_SECONDS` on a connection of its own and
    hand a changed list to ``on_change`` (from this thread: the caller moves it to its loop).

    A poll, not RandR events: ``xrandr --setmonitor``/``--delmonitor`` send no event at all
    (checked on Xvfb with every RandR notify mask selected), and one GetMonitors request on an
    open connection costs well under a millisecond. :meth:`close` stops it.
    """

    def __init__(self, display: str, known: list[Monitor],
                 on_change: Callable[[list[Monitor]], object]) -> None:
        from Xlib import display as xdisplay

        self._conn = xdisplay.Display(display)
        self._known = known
        self._on_change = on_change
        self._start_thread("x-monitors")

    def _run(self) -> None:
        try:
            while not self._stopping:
                select.select([self.wake_r], [], [], WATCH_SECONDS)
                if self._stopping:
                    return
                monitors = read_monitors(self._conn)
                if monitors != self._known:
                    self._known = monitors
                    self._on_change(monitors)
        except Exception as exc:  # the server went away: the host is stopping
            if not self._stopping:
                log.warning("monitor watcher stopped: %s", exc)
