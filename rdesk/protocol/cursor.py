"""The host's cursor on the wire: its shape as a PNG, cached by serial (docs/protocol.md, "Cursor").

When the host's cursor changes, the host sends ``cursor`` (its XFIXES serial, size, hot spot
and the PNG's byte count) and the PNG in ``cursor_data`` chunks of base64, or, for a cursor this
viewer already holds, only ``cursor_use``. Viewers draw it locally, so pointing feels local
on a slow link. A cursor is at most :data:`MAX_CURSOR_SIDE` pixels a side, its hot spot inside
it, its PNG at most :data:`MAX_CURSOR_PNG` bytes.

:class:`CursorAssembler` is the viewer's side, sans-I/O: it returns the finished
``(shape, png)`` and keeps the last :data:`CACHE_SIZE` of them by serial; the host keeps the
same count of serials per viewer (:class:`SentCursors`), so it never names one the viewer
dropped.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections import OrderedDict
from collections.abc import Iterator
from typing import ClassVar

from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.fields import Field, Int, Str

__all__ = [
    "CACHE_SIZE",
    "CHUNK_BYTES",
    "CURSOR_TYPES",
    "MAX_CURSOR_PNG",
    "MAX_CURSOR_SIDE",
    "CursorAssembler",
    "CursorData",
    "CursorShape",
    "CursorUse",
    "SentCursors",
    "cursor_messages",
]

MAX_CURSOR_SIDE = 256
#: A 256x256 RGBA PNG never needs more (raw pixels, filter bytes, headers).
MAX_CURSOR_PNG = 300 * 1024
CHUNK_BYTES = 11 * 1024
#: Cursors a viewer keeps by serial, and the host remembers having sent it.
CACHE_SIZE = 32

_SERIAL = Int(0, 0xFFFFFFFF)
_SIDE = Int(1, MAX_CURSOR_SIDE)
_HOT = Int(0, MAX_CURSOR_SIDE - 1)


@dataclasses.dataclass(frozen=True)
class CursorShape:
    """Host → viewer: cursor ``serial`` is ``width`` x ``height`` with its hot spot at
    (``xhot``, ``yhot``); its PNG of ``size`` bytes follows in ``cursor_data``."""

    T: ClassVar[str] = "cursor"
    FIELDS: ClassVar[dict[str, Field]] = {
        "serial": _SERIAL, "width": _SIDE, "height": _SIDE, "xhot": _HOT, "yhot": _HOT,
        "size": Int(1, MAX_CURSOR_PNG),
    }  # fmt: skip
    serial: int
    width: int
    height: int
    xhot: int
    yhot: int
    size: int


@dataclasses.dataclass(frozen=True)
class CursorData:
    """Host → viewer: the next bytes of cursor ``serial``'s PNG, as padded base64."""

    T: ClassVar[str] = "cursor_data"
    FIELDS: ClassVar[dict[str, Field]] = {"serial": _SERIAL, "data": Str(4 * -(-CHUNK_BYTES // 3))}
    serial: int
    data: str


@dataclasses.dataclass(frozen=True)
class CursorUse:
    """Host → viewer: show cursor ``serial`` again (the viewer holds it)."""

    T: ClassVar[str] = "cursor_use"
    FIELDS: ClassVar[dict[str, Field]] = {"serial": _SERIAL}
    serial: int


CURSOR_TYPES = (CursorShape, CursorData, CursorUse)
HOST_SENDS: tuple[type, ...] = CURSOR_TYPES


def cursor_messages(shape: CursorShape, png: bytes) -> Iterator[object]:
    """``shape`` then its PNG in chunks."""
    yield shape
    for start in range(0, len(png), CHUNK_BYTES):
        yield CursorData(shape.serial, base64.b64encode(png[start : start + CHUNK_BYTES]).decode())


class SentCursors:
    """The host's memory of which serials one viewer holds (the same bound as its cache)."""

    def __init__(self) -> None:
        self._serials: OrderedDict[int, None] = OrderedDict()

    def holds(self, serial: int) -> bool:
        """Whether the viewer holds ``serial``; marks it as recently used."""
        if serial in self._serials:
            self._serials.move_to_end(serial)
            return True
        return False

    def sent(self, serial: int) -> None:
        self._serials[serial] = None
        self._serials.move_to_end(serial)
        while len(self._serials) > CACHE_SIZE:
            self._serials.popitem(last=False)


class CursorAssembler:
    """The viewer's side: feed it the host's cursor messages; it returns the cursor to show."""

    def __init__(self) -> None:
        self._open: tuple[CursorShape, bytearray] | None = None
        self._cache: OrderedDict[int, tuple[CursorShape, bytes]] = OrderedDict()

    def receive(self, message: object) -> tuple[CursorShape, bytes] | None:
        """The ``(shape, png)`` to show now, or ``None``; raises :class:`RemoteProtocolError`
        for a hot spot outside the image, chunks beyond the announced size, a shape while one
        is open, or a ``cursor_use`` of a serial it never had."""
        if isinstance(message, CursorShape):
            if self._open is not None:
                raise RemoteProtocolError(f"cursor {message.serial} while another is open")
            if message.xhot >= message.width or message.yhot >= message.height:
                raise RemoteProtocolError(f"cursor {message.serial}: hot spot outside the image")
            self._open = (message, bytearray())
            return None
        if isinstance(message, CursorData):
            if self._open is None or self._open[0].serial != message.serial:
                raise RemoteProtocolError(f"cursor_data {message.serial} without its cursor")
            shape, buffer = self._open
            try:
                buffer += base64.b64decode(message.data, validate=True)
            except (binascii.Error, ValueError):
                raise RemoteProtocolError("cursor_data: not base64") from None
            if len(buffer) > shape.size:
                raise RemoteProtocolError(f"cursor_data {shape.serial}: more than announced")
            if len(buffer) < shape.size:
                return None
            self._open = None
            return self._keep(shape, bytes(buffer))
        if isinstance(message, CursorUse):
            held = self._cache.get(message.serial)
            if held is None:
                raise RemoteProtocolError(f"cursor_use {message.serial}: never sent")
            self._cache.move_to_end(message.serial)
            return held
        return None

    def _keep(self, shape: CursorShape, png: bytes) -> tuple[CursorShape, bytes]:
        self._cache[shape.serial] = (shape, png)
        self._cache.move_to_end(shape.serial)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return shape, png
