"""Encode and decode rdesk messages (docs/protocol.md, "Wire format").

* Control messages: UTF-8 JSON objects in websocket text frames, ``{"t": TYPE, ...fields}``.
  Every field is required, no other field is allowed, duplicate keys and non-finite numbers
  are refused.
* Updates: websocket binary frames, big-endian::

      header  = kind:u8 (=1) flags:u8 (bit 0: exact) nrects:u16 seq:u32 timestamp_us:u64
      rect    = x:u16 y:u16 w:u16 h:u16 encoding:u8 reserved:u8 (=0) length:u32 payload
      H264 payload = stream:u8 (<8) flags:u8 (bit 0: key) reserved:u16 (=0) access unit

* Transfer chunks (``xfer_data``): binary frames of kind 2, :mod:`rdesk.protocol.chunks`.
  The first byte of a binary frame says which.

:func:`decode` raises :class:`RemoteProtocolError` — and nothing else — for any input that is
not a valid message; :func:`encode` raises :class:`LocalProtocolError` for an invalid message.
Bounds that depend on session state (a rectangle inside the current screen) are checked by
:mod:`rdesk.protocol.session`, not here.
"""

from __future__ import annotations

import json
import struct

from rdesk.protocol import limits
from rdesk.protocol.chunks import CHUNK_KIND, XferData, decode_chunk, encode_chunk
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from rdesk.protocol.fields import MayOmit
from rdesk.protocol.messages import CONTROL_TYPES, ControlMessage, Message
from rdesk.protocol.updates import Rect, Update
from rdesk.protocol.video import MIN_VIDEO_SIDE, unpack_header

__all__ = [
    "FLAG_EXACT",
    "HEADER",
    "RECT_HEADER",
    "UPDATE_KIND",
    "copy_payload",
    "copy_source",
    "decode",
    "encode",
]

UPDATE_KIND = 1
#: Update flag: the viewer's framebuffer is pixel-exact once this update is applied.
FLAG_EXACT = 0x01
HEADER = struct.Struct("!BBHIQ")
RECT_HEADER = struct.Struct("!HHHHBBI")
_COPY = struct.Struct("!HH")
_MAX_TIMESTAMP = 2**64 - 1


def encode(message: Message) -> str | bytes:
    """Serialise ``message``: a ``str`` for a control message, ``bytes`` for an update or a
    transfer chunk.

    The message is validated against the same schema and limits as on receipt, so a peer
    following this codec never sends what the other side must refuse.
    """
    if isinstance(message, Update):
        return _encode_update(message)
    if isinstance(message, XferData):
        return encode_chunk(message)
    cls = type(message)
    if CONTROL_TYPES.get(getattr(cls, "T", "")) is not cls:
        raise LocalProtocolError(f"not an rdesk message: {cls.__name__}")
    obj: dict[str, object] = {"t": cls.T}
    for name, spec in cls.FIELDS.items():
        value = getattr(message, name)
        if value is None and isinstance(spec, MayOmit):
            continue  # left out: the peer may not know the field
        wanted = spec.check(value)
        if wanted is not None:
            raise LocalProtocolError(f"{cls.T}.{name} must be {wanted}")
        obj[name] = spec.dump(value)
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if len(text.encode()) > limits.MAX_CONTROL_MESSAGE:
        raise LocalProtocolError(f"{cls.T} message exceeds {limits.MAX_CONTROL_MESSAGE} bytes")
    return text


def decode(data: str | bytes) -> Message:
    """Parse one websocket message; raise :class:`RemoteProtocolError` if it is not valid."""
    if isinstance(data, str):
        return _decode_control(data)
    if isinstance(data, (bytes, bytearray, memoryview)):
        if data[:1] == bytes((CHUNK_KIND,)):
            return decode_chunk(bytes(data))
        return _decode_update(bytes(data))
    raise LocalProtocolError(f"cannot decode {type(data).__name__}")


# --- control -----------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise RemoteProtocolError("duplicate key in message")
    return obj


def _no_constant(name: str) -> object:
    raise RemoteProtocolError(f"non-finite number {name} in message")


def _decode_control(text: str) -> ControlMessage:
    # Cheap bound first: a character is at most 4 bytes of UTF-8.
    if len(text) > limits.MAX_CONTROL_MESSAGE or len(text.encode("utf-8", "surrogatepass")) > (
        limits.MAX_CONTROL_MESSAGE
    ):
        raise RemoteProtocolError(
            f"control message exceeds {limits.MAX_CONTROL_MESSAGE} bytes", CloseCode.TOO_BIG
        )
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RemoteProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError("message is not valid JSON") from exc
    if not isinstance(obj, dict):
        raise RemoteProtocolError("message is not a JSON object")
    kind = obj.pop("t", None)
    cls = CONTROL_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RemoteProtocolError(f"unknown message type {str(kind)[:32]!r}")
    fields = cls.FIELDS  # type: ignore[attr-defined]
    extra = obj.keys() - fields.keys()
    if extra:
        raise RemoteProtocolError(f"{kind}: unexpected field {sorted(extra)[0][:32]!r}")
    for name, spec in fields.items():
        if name not in obj:
            if isinstance(spec, MayOmit):
                obj[name] = None
                continue
            raise RemoteProtocolError(f"{kind}: missing field {name!r}")
        wanted = spec.check(obj[name])
        if wanted is not None:
            raise RemoteProtocolError(f"{kind}.{name} must be {wanted}")
        obj[name] = spec.parse(obj[name])
    message: ControlMessage = cls(**obj)
    return message


# --- updates -----------------------------------------------------------------------------------


def _encode_update(update: Update) -> bytes:
    if (
        type(update.seq) is not int
        or type(update.timestamp_us) is not int
        or not 0 <= update.seq <= 0xFFFFFFFF
        or not 0 <= update.timestamp_us <= _MAX_TIMESTAMP
    ):
        raise LocalProtocolError("update seq or timestamp out of range")
    if len(update.rects) > limits.MAX_RECTS_PER_UPDATE:
        raise LocalProtocolError(f"update has more than {limits.MAX_RECTS_PER_UPDATE} rects")
    flags = FLAG_EXACT if update.exact else 0
    parts = [HEADER.pack(UPDATE_KIND, flags, len(update.rects), update.seq, update.timestamp_us)]
    size = HEADER.size
    for rect in update.rects:
        _check_rect(rect, LocalProtocolError)
        parts.append(
            RECT_HEADER.pack(
                rect.x, rect.y, rect.w, rect.h, rect.encoding, 0, len(rect.payload)
            )
        )
        parts.append(rect.payload)
        size += RECT_HEADER.size + len(rect.payload)
    if size > limits.MAX_UPDATE_MESSAGE:
        raise LocalProtocolError(f"update exceeds {limits.MAX_UPDATE_MESSAGE} bytes")
    return b"".join(parts)


def _check_rect(rect: Rect, error: type[LocalProtocolError] | type[RemoteProtocolError]) -> None:
    """Check what can be checked of a rectangle without knowing the screen size."""
    for name in ("x", "y"):
        value = getattr(rect, name)
        if type(value) is not int or not 0 <= value < limits.MAX_SCREEN_SIDE:
            raise error(f"rect.{name} out of range")
    for name in ("w", "h"):
        value = getattr(rect, name)
        if type(value) is not int or not 1 <= value <= limits.MAX_SCREEN_SIDE:
            raise error(f"rect.{name} out of range")
    if rect.x + rect.w > limits.MAX_SCREEN_SIDE or rect.y + rect.h > limits.MAX_SCREEN_SIDE:
        raise error("rect extends past the largest screen")
    if not isinstance(rect.encoding, Encoding):
        raise error("rect has an unknown encoding")
    if type(rect.payload) is not bytes:
        raise error("rect payload must be bytes")
    if len(rect.payload) > limits.MAX_RECT_PAYLOAD or not rect.payload:
        raise error("rect payload is empty or too large")
    if rect.encoding is Encoding.COPY:
        if len(rect.payload) != _COPY.size:
            raise error("copy rect payload must be 4 bytes")
        src_x, src_y = _COPY.unpack(rect.payload)
        if src_x + rect.w > limits.MAX_SCREEN_SIDE or src_y + rect.h > limits.MAX_SCREEN_SIDE:
            raise error("copy rect source extends past the largest screen")
    elif rect.encoding is Encoding.H264:
        if rect.w % 2 or rect.h % 2 or rect.w < MIN_VIDEO_SIDE or rect.h < MIN_VIDEO_SIDE:
            raise error(f"video rect must be even and at least {MIN_VIDEO_SIDE} a side")
        if unpack_header(rect.payload) is None:
            raise error("video rect has a malformed video header")


def copy_payload(src_x: int, src_y: int) -> bytes:
    """The payload of a :attr:`Encoding.COPY` rectangle whose source is at (src_x, src_y)."""
    return _COPY.pack(src_x, src_y)


def copy_source(rect: Rect) -> tuple[int, int]:
    """The source position of a validated :attr:`Encoding.COPY` rectangle."""
    src: tuple[int, int] = _COPY.unpack(rect.payload)
    return src


def _decode_update(data: bytes) -> Update:
    if len(data) > limits.MAX_UPDATE_MESSAGE:
        raise RemoteProtocolError(
            f"update exceeds {limits.MAX_UPDATE_MESSAGE} bytes", CloseCode.TOO_BIG
        )
    if len(data) < HEADER.size:
        raise RemoteProtocolError("update shorter than its header")
    kind, flags, nrects, seq, timestamp = HEADER.unpack_from(data)
    if kind != UPDATE_KIND or flags & ~FLAG_EXACT:
        raise RemoteProtocolError("unknown binary message kind or flags")
    if nrects > limits.MAX_RECTS_PER_UPDATE:
        raise RemoteProtocolError(f"update has more than {limits.MAX_RECTS_PER_UPDATE} rects")
    offset = HEADER.size
    rects = []
    for _ in range(nrects):
        if offset + RECT_HEADER.size > len(data):
            raise RemoteProtocolError("update truncated in a rect header")
        x, y, w, h, enc, reserved, length = RECT_HEADER.unpack_from(data, offset)
        offset += RECT_HEADER.size
        if reserved != 0:
            raise RemoteProtocolError("rect reserved byte is not zero")
        if length > len(data) - offset:
            raise RemoteProtocolError("rect payload runs past the end of the update")
        try:
            encoding = Encoding(enc)
        except ValueError:
            raise RemoteProtocolError(f"rect has unknown encoding {enc}") from None
        rect = Rect(x, y, w, h, encoding, data[offset : offset + length])
        _check_rect(rect, RemoteProtocolError)
        rects.append(rect)
        offset += length
    if offset != len(data):
        raise RemoteProtocolError("trailing bytes after the last rect")
    return Update(seq, timestamp, tuple(rects), exact=bool(flags & FLAG_EXACT))

