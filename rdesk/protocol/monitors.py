"""The host's monitors on the wire, and switching between them (docs/protocol.md, "Monitors").

At a viewer's join the host sends one ``monitor`` per RandR monitor (its place on the root
window) and ``monitor_current`` (which one is shared, ``-1`` for the whole screen). A viewer
holding control may ask for another with ``select_monitor``; the host then shares it for
every viewer, sends ``monitor_current`` to all, and a ``screen`` of the new size follows.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from rdesk.protocol import limits
from rdesk.protocol.fields import Bool, Field, Int, Str

__all__ = [
    "ALL",
    "HOST_SENDS",
    "MAX_MONITORS",
    "MONITOR_TYPES",
    "VIEWER_SENDS",
    "MonitorCurrent",
    "MonitorInfo",
    "SelectMonitor",
]

#: Monitors a host lists at most.
MAX_MONITORS = 64
#: ``monitor_current`` / ``select_monitor`` index meaning the whole screen.
ALL = -1

_INDEX = Int(0, MAX_MONITORS - 1)
_CHOICE = Int(ALL, MAX_MONITORS - 1)
_POS = Int(-limits.MAX_SCREEN_SIDE, limits.MAX_SCREEN_SIDE)
_SIDE = Int(1, limits.MAX_SCREEN_SIDE)


@dataclasses.dataclass(frozen=True)
class MonitorInfo:
    """Host → viewer: monitor ``index`` of ``count`` is ``width`` x ``height`` at (x, y)."""

    T: ClassVar[str] = "monitor"
    FIELDS: ClassVar[dict[str, Field]] = {
        "index": _INDEX, "count": Int(1, MAX_MONITORS), "name": Str(limits.MAX_STRING),
        "x": _POS, "y": _POS, "width": _SIDE, "height": _SIDE, "primary": Bool(),
    }  # fmt: skip
    index: int
    count: int
    name: str
    x: int
    y: int
    width: int
    height: int
    primary: bool


@dataclasses.dataclass(frozen=True)
class MonitorCurrent:
    """Host → viewer: monitor ``index`` is shared now (``-1``: the whole screen)."""

    T: ClassVar[str] = "monitor_current"
    FIELDS: ClassVar[dict[str, Field]] = {"index": _CHOICE}
    index: int


@dataclasses.dataclass(frozen=True)
class SelectMonitor:
    """Viewer → host: please share monitor ``index`` (``-1``: the whole screen)."""

    T: ClassVar[str] = "select_monitor"
    FIELDS: ClassVar[dict[str, Field]] = {"index": _CHOICE}
    index: int


MONITOR_TYPES = (MonitorInfo, MonitorCurrent, SelectMonitor)
HOST_SENDS: tuple[type, ...] = (MonitorInfo, MonitorCurrent)
VIEWER_SENDS: tuple[type, ...] = (SelectMonitor,)
