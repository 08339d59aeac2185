"""Resizing the host's virtual desktop to the viewer's window (docs/protocol.md, "Resize").

The viewer holding control sends ``resize`` with a request ``id`` and the size it wants; the
host answers every request with one ``resize_result`` carrying the same ``id``: ``ok`` and the
size the desktop now has, or a one-line ``reason`` (not a virtual desktop, not in control, a
later request replaced this one). On success every viewer then gets a ``screen`` of the new
size and a full update, as for any screen size change.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from rdesk.protocol import limits
from rdesk.protocol.fields import Bool, Field, Int, Str

__all__ = [
    "HOST_SENDS",
    "MAX_SIDE",
    "MIN_SIDE",
    "RESIZE_TYPES",
    "VIEWER_SENDS",
    "Resize",
    "ResizeResult",
]

#: Smallest and largest width or height a viewer may ask for (both inclusive).
MIN_SIDE = 16
MAX_SIDE = 8192

_ID = Int(0, 0xFFFFFFFF)


@dataclasses.dataclass(frozen=True)
class Resize:
    """Viewer → host: please make the desktop ``width`` x ``height`` (request ``id``)."""

    T: ClassVar[str] = "resize"
    FIELDS: ClassVar[dict[str, Field]] = {
        "id": _ID, "width": Int(MIN_SIDE, MAX_SIDE), "height": Int(MIN_SIDE, MAX_SIDE),
    }  # fmt: skip
    id: int
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class ResizeResult:
    """Host → viewer: request ``id`` done (``ok``: the desktop is ``width`` x ``height``) or
    refused for ``reason``; ``width`` x ``height`` is the desktop's size either way."""

    T: ClassVar[str] = "resize_result"
    FIELDS: ClassVar[dict[str, Field]] = {
        "id": _ID, "ok": Bool(), "width": Int(1, limits.MAX_SCREEN_SIDE),
        "height": Int(1, limits.MAX_SCREEN_SIDE), "reason": Str(limits.MAX_STRING),
    }  # fmt: skip
    id: int
    ok: bool
    width: int
    height: int
    reason: str = ""


RESIZE_TYPES = (Resize, ResizeResult)
HOST_SENDS: tuple[type, ...] = (ResizeResult,)
VIEWER_SENDS: tuple[type, ...] = (Resize,)
