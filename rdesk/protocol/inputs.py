"""The viewer's input on the wire: pointer, wheel and keys, and the sync that confirms them.

docs/protocol.md, "Input": coordinates are host pixels, keys X11 keysyms; a viewer sends
``sync`` and the host answers ``input_ack`` once every earlier input was handled.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from rdesk.protocol import limits
from rdesk.protocol.fields import Bool, Field, Int, Str

__all__ = ["INPUT_TYPES", "InputAck", "Key", "Pointer", "Sync", "Wheel"]

_U32 = Int(0, 0xFFFFFFFF)
_COORD = Int(0, limits.MAX_SCREEN_SIDE - 1)
_REASON = Str(limits.MAX_STRING)


@dataclasses.dataclass(frozen=True)
class Pointer:
    """Viewer → host: pointer at (x, y) in host pixels with ``buttons`` held (bit n-1 = n)."""

    T: ClassVar[str] = "pointer"
    FIELDS: ClassVar[dict[str, Field]] = {
        "x": _COORD,
        "y": _COORD,
        "buttons": Int(0, limits.MAX_BUTTON_MASK),
    }
    x: int
    y: int
    buttons: int


@dataclasses.dataclass(frozen=True)
class Wheel:
    """Viewer → host: wheel detents at (x, y); positive ``dy`` scrolls down, ``dx`` right."""

    T: ClassVar[str] = "wheel"
    FIELDS: ClassVar[dict[str, Field]] = {
        "x": _COORD,
        "y": _COORD,
        "dx": Int(-limits.MAX_WHEEL_STEPS, limits.MAX_WHEEL_STEPS),
        "dy": Int(-limits.MAX_WHEEL_STEPS, limits.MAX_WHEEL_STEPS),
    }
    x: int
    y: int
    dx: int
    dy: int


@dataclasses.dataclass(frozen=True)
class Key:
    """Viewer → host: X11 keysym pressed (``down``) or released."""

    T: ClassVar[str] = "key"
    FIELDS: ClassVar[dict[str, Field]] = {
        "keysym": Int(1, limits.MAX_KEYSYM),
        "down": Bool(),
    }
    keysym: int
    down: bool


@dataclasses.dataclass(frozen=True)
class Sync:
    """Viewer → host: answer with :class:`InputAck` once all earlier input was handled."""

    T: ClassVar[str] = "sync"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _U32}
    id: int


@dataclasses.dataclass(frozen=True)
class InputAck:
    """Host → viewer: all input before :class:`Sync` ``id`` was injected (``ok``) or not."""

    T: ClassVar[str] = "input_ack"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _U32, "ok": Bool(), "reason": _REASON}
    id: int
    ok: bool
    reason: str


INPUT_TYPES = (Pointer, Wheel, Key, Sync, InputAck)
