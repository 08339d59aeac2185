"""The viewer's video decoders: one PyAV H.264 decoder per stream, checked before it decodes.

A hostile host is contained here (docs/protocol.md, "Video"): a key unit's SPS is parsed
(:func:`rdesk.protocol.h264.check_key_unit`) before a decoder is made or fed, so its declared
size must be the rectangle's — 50000×50000 never reaches libavcodec; a non-key unit for a
stream without a decoder, or sent for another rectangle than its key unit, is dropped; a
decoder error drops only that stream's decoder. Each of these keeps the last good pixels and
asks for a key unit (:meth:`VideoDecoders.take_requests`); none closes the connection. The
decoder runs with ``err_detect=explode`` so corrupt data is an error, not a concealed picture.

PyAV is optional for a viewer: :func:`available` says whether it imports; without it the
viewer never declares video and the host sends tiles.
"""

from __future__ import annotations

import functools
from typing import Any

from PIL import Image

from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.h264 import H264Error, check_key_unit
from rdesk.protocol.updates import Rect
from rdesk.protocol.video import KEYFRAME_INTERVAL, VIDEO_HEADER, unpack_header

__all__ = ["VideoDecoders", "available"]

Box = tuple[int, int, int, int]


@functools.cache
def available() -> bool:
    """Whether PyAV with an H.264 decoder imports here."""
    try:
        import av

        av.codec.Codec("h264", "r")
    except Exception:  # ImportError, or a PyAV built without the decoder: tiles then
        return False
    return True


class VideoDecoders:
    """The decoders of one connection's streams; :meth:`decode` one H264 rectangle at a time."""

    def __init__(self) -> None:
        #: stream -> (the rect of its last key unit, its decoder).
        self._streams: dict[int, tuple[Box, Any]] = {}
        self._wanted: set[int] = set()
        self._asked: dict[int, float] = {}
        #: Units refused or failed (by reason), for statistics and tests.
        self.refused: dict[str, int] = {}
        self.decoded = 0

    def decode(self, rect: Rect) -> Image.Image | None:
        """The picture of one H264 rectangle, or ``None`` when it is refused or fails (the
        stream then waits for a key unit, which :meth:`take_requests` asks for).

        Raises :class:`RemoteProtocolError` only for a malformed video header (the codec
        already refuses those)."""
        header = unpack_header(rect.payload)
        if header is None:
            raise RemoteProtocolError("video rect has a malformed video header")
        unit = rect.payload[VIDEO_HEADER.size :]
        box = (rect.x, rect.y, rect.w, rect.h)
        stream = self._streams.get(header.stream)
        if header.key:
            try:
                check_key_unit(unit, (rect.w, rect.h))
            except H264Error as exc:
                return self._refuse(header.stream, f"key unit refused: {exc}")
            decoder = _decoder()
            self._streams[header.stream] = (box, decoder)
        elif stream is None:
            return self._refuse(header.stream, "no key unit yet")
        elif stream[0] != box:
            return self._refuse(header.stream, "unit for another rectangle than its key unit")
        else:
            decoder = stream[1]
        try:
            import av

            frames = decoder.decode(av.Packet(unit))
        except Exception:  # any decoder failure is the stream's, not the connection's
            return self._refuse(header.stream, "decoder error")
        if not frames:
            return None  # no picture out of this unit (never with zerolatency streams)
        picture = frames[-1]
        if (picture.width, picture.height) != (rect.w, rect.h):
            return self._refuse(header.stream, "decoded picture is not the rectangle's size")
        self._wanted.discard(header.stream)
        self.decoded += 1
        image: Image.Image = picture.to_image()
        return image

    def _refuse(self, stream: int, reason: str) -> Image.Image | None:
        """Drop ``stream``'s decoder and ask for a key unit; nothing to paint (``None``)."""
        kind = reason.split(":")[0]
        self.refused[kind] = self.refused.get(kind, 0) + 1
        self._streams.pop(stream, None)
        self._wanted.add(stream)
        return None

    def end(self, stream: int) -> None:
        """The host ended ``stream`` (``video_end``): free its decoder."""
        self._streams.pop(stream, None)
        self._wanted.discard(stream)

    def reset(self) -> None:
        """The screen changed size: every stream starts again."""
        self._streams.clear()
        self._wanted.clear()

    def take_requests(self, now: float) -> list[int]:
        """The streams to send ``keyframe`` for now: each waiting for a key unit, at most once
        per :data:`KEYFRAME_INTERVAL` (the host would ignore more)."""
        due = [s for s in sorted(self._wanted)
               if now - self._asked.get(s, -1e9) >= KEYFRAME_INTERVAL]
        for stream in due:
            self._asked[stream] = now
        return due


def _decoder() -> Any:
    """A fresh H.264 decoder: one thread (frame threads add a frame of delay each), low
    delay (a picture out per unit), errors raised rather than concealed."""
    import av

    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1
    decoder.flags |= av.codec.context.Flags.low_delay
    decoder.options = {"err_detect": "explode"}
    return decoder
