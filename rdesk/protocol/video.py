"""Video streams on the wire (docs/protocol.md, "Video"): negotiation, the video header, the
``video`` / ``keyframe`` / ``video_end`` messages, and ``ack_hold``.

A viewer that can decode H.264 says so with ``video``; the host may then send a region that
changes in most frames as an :attr:`~rdesk.protocol.encodings.Encoding.H264` rectangle whose
payload is a 4-byte :data:`VIDEO_HEADER` (stream, flags, reserved) and one Annex B access unit.
The codec (:mod:`rdesk.protocol.codec`) checks the header and the rectangle's shape; what the
access unit holds is checked by the viewer (:mod:`rdesk.protocol.h264` reads the SPS before
any decoder sees it).

The ``video`` message's list is also where a viewer names what else it can do (unknown names
are ignored, so an older host ignores them): :data:`FEATURE_HOLD` says it can report, in each
``ack``, how long it held the update before acknowledging it (decode and paint). A host that
uses it answers with :class:`AckHold`, once; only then does the viewer add ``hold_us`` to its
acks, which an older host would refuse.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import ClassVar

from rdesk.protocol.encodings import Encoding
from rdesk.protocol.fields import Field, Int, Str
from rdesk.protocol.updates import Update

__all__ = [
    "CODEC_H264",
    "FEATURE_HOLD",
    "FLAG_KEY",
    "HOST_SENDS",
    "KEYFRAME_INTERVAL",
    "MAX_VIDEO_STREAMS",
    "MIN_VIDEO_SIDE",
    "VIDEO_HEADER",
    "VIDEO_TYPES",
    "VIEWER_SENDS",
    "AckHold",
    "Keyframe",
    "Video",
    "VideoEnd",
    "VideoHeader",
    "codec_list",
    "key_bytes",
    "pack_header",
    "unpack_header",
]

#: Video streams one connection may have at a time (stream numbers 0 … 7).
MAX_VIDEO_STREAMS = 8
#: Smallest width or height of a video rectangle, in pixels (both are also even).
MIN_VIDEO_SIDE = 16
#: The host sends at most one requested key unit per stream this often (seconds).
KEYFRAME_INTERVAL = 0.5
#: The one decoder name version 1 knows.
CODEC_H264 = "h264"
#: Not a decoder: in ``video``'s list, "this viewer can send ``ack.hold_us``".
FEATURE_HOLD = "hold"
#: Video header flag: this access unit is an IDR with SPS and PPS in front.
FLAG_KEY = 0x01
#: stream:u8 flags:u8 reserved:u16, in front of every H264 rectangle's access unit.
VIDEO_HEADER = struct.Struct("!BBH")

_STREAM = Int(0, MAX_VIDEO_STREAMS - 1)


@dataclasses.dataclass(frozen=True)
class VideoHeader:
    """The parsed video header of an H264 rectangle."""

    stream: int
    key: bool


def pack_header(stream: int, key: bool) -> bytes:
    """The 4 header bytes of a video rectangle's payload."""
    if not 0 <= stream < MAX_VIDEO_STREAMS:
        raise ValueError(f"stream {stream} out of range")
    return VIDEO_HEADER.pack(stream, FLAG_KEY if key else 0, 0)


def unpack_header(payload: bytes) -> VideoHeader | None:
    """The header of an H264 payload, or ``None`` if it is malformed: shorter than the header
    plus one byte, a stream number ≥ :data:`MAX_VIDEO_STREAMS`, unknown flags or a non-zero
    reserved field."""
    if len(payload) <= VIDEO_HEADER.size:
        return None
    stream, flags, reserved = VIDEO_HEADER.unpack_from(payload)
    if stream >= MAX_VIDEO_STREAMS or flags & ~FLAG_KEY or reserved:
        return None
    return VideoHeader(stream, bool(flags & FLAG_KEY))


def key_bytes(update: Update) -> int:
    """Payload bytes of the key units among ``update``'s H264 rectangles (flow control spares
    them: :meth:`~rdesk.protocol.flow.InFlight.can_send`)."""
    return sum(len(rect.payload) for rect in update.rects
               if rect.encoding is Encoding.H264 and (header := unpack_header(rect.payload))
               is not None and header.key)


@dataclasses.dataclass(frozen=True)
class Video:
    """Viewer → host: the video decoders this viewer has, comma-separated, preferred first
    (``""``: none). May be repeated; the last one counts. Unknown names are ignored."""

    T: ClassVar[str] = "video"
    FIELDS: ClassVar[dict[str, Field]] = {"codecs": Str(64)}
    codecs: str


@dataclasses.dataclass(frozen=True)
class Keyframe:
    """Viewer → host: please send a key unit on ``stream`` (its decoder was lost or failed)."""

    T: ClassVar[str] = "keyframe"
    FIELDS: ClassVar[dict[str, Field]] = {"stream": _STREAM}
    stream: int


@dataclasses.dataclass(frozen=True)
class VideoEnd:
    """Host → viewer: ``stream`` ended; free its decoder (its pixels stay until painted)."""

    T: ClassVar[str] = "video_end"
    FIELDS: ClassVar[dict[str, Field]] = {"stream": _STREAM}
    stream: int


@dataclasses.dataclass(frozen=True)
class AckHold:
    """Host → viewer, once, after a ``video`` that listed :data:`FEATURE_HOLD`: from now on
    every ``ack`` may carry ``hold_us`` (docs/protocol.md §7)."""

    T: ClassVar[str] = "ack_hold"
    FIELDS: ClassVar[dict[str, Field]] = {}


def codec_list(codecs: str) -> list[str]:
    """The names in a ``video.codecs`` field, in order, blanks dropped."""
    return [name.strip() for name in codecs.split(",") if name.strip()]


VIDEO_TYPES = (Video, Keyframe, VideoEnd, AckHold)
HOST_SENDS: tuple[type, ...] = (VideoEnd, AckHold)
VIEWER_SENDS: tuple[type, ...] = (Video, Keyframe)
