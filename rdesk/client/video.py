"""The viewer's video decoders: one PyAV H.264 decoder per stream, checked before it decodes.

A hostile host is contained here (docs/protocol.md, "Video"): a key unit's SPS is parsed
(:func:`rdesk.protocol.h264.check_key_unit`) before a decoder is made or fed, so its declared
size must be the rectangle's — 50000×50000 never reaches libavcodec; a non-key unit for a
stream without a decoder, or sent for another rectangle than its key unit, is dropped; a
decoder error drops only that stream's decoder. Each of these keeps the last good pixels and
asks for a key unit (:meth:`VideoDecoders.take_requests`); none closes the connection. The
decoder runs with ``err_detect=explode`` so corrupt data is an error, not a concealed picture.

Decoded pictures are converted by libyuv's ``I420ToABGR`` (:mod:`rdesk.common.yuv`) when it is
installed and the picture has the protocol's colours (8-bit 4:2:0, BT.601 or unmarked, limited
range): one SIMD pass from the decoder's planes **straight into the framebuffer's own pixel
memory** at the rectangle's offset and stride (:mod:`rdesk.client.pixels`), with nothing in
between and nothing pasted. PyAV's ``to_image`` (swscale, then three copies) took 5.6 ms a
1080p frame, twice the decode itself; libyuv into a picture of its own, then a paste, 1.0 +
0.8 ms; into the framebuffer, the 1.0 ms alone (docs/performance.md, "Issue 16, eighth
session: CPU per video frame" and "Issue 16, ninth session: the Python viewer's CPU per video
frame"). A framebuffer without mapped memory gets the picture converted into a reused
``RGBA`` buffer a Pillow image shares, pasted as it is; any other picture, or no libyuv, takes
``to_image``.

The decoder runs on one thread, and without ``flags2=fast`` (which for H.264 only skips
deblocking across slices of a slice-threaded decoder and a copy of escape-free NAL units:
no gain measured on the host's single-slice units).

PyAV is optional for a viewer: :func:`available` says whether it imports; without it the
viewer never declares video and the host sends tiles.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from PIL import Image

from rdesk.client.pixels import Pixels
from rdesk.common import yuv
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


#: The pictures libyuv converts (the others go through swscale): 8-bit 4:2:0 (``yuv420p``; a
#: ``yuvj420p`` picture is full range) whose colour matrix is BT.601 or unmarked (FFmpeg's
#: AVCOL_SPC_UNSPECIFIED, _BT470BG, _SMPTE170M) and whose range is not full (AVCOL_RANGE_JPEG).
LIBYUV_COLORSPACES = frozenset({2, 5, 6})
FULL_RANGE = 2


class VideoDecoders:
    """The decoders of one connection's streams; :meth:`paint` (or :meth:`decode`) one H264
    rectangle at a time.

    :param use_libyuv: ``False`` keeps to PyAV's ``to_image`` (tests compare both paths).
    """

    def __init__(self, use_libyuv: bool = True) -> None:
        self._convert = yuv.function("I420ToABGR") if use_libyuv else None
        #: The RGBA pixels the last libyuv picture was written to (reused while its size holds),
        #: and a ctypes view of them (its export keeps the bytearray from moving).
        self._rgba = bytearray()
        self._rgba_view = ctypes.c_char.from_buffer(bytearray(1))
        #: stream -> (the rect of its last key unit, its decoder).
        self._streams: dict[int, tuple[Box, Any]] = {}
        self._wanted: set[int] = set()
        self._asked: dict[int, float] = {}
        #: Units refused or failed (by reason), for statistics and tests.
        self.refused: dict[str, int] = {}
        self.decoded = 0

    @property
    def uses_libyuv(self) -> bool:
        return self._convert is not None

    def paint(self, rect: Rect, image: Image.Image, pixels: Pixels | None) -> bool:
        """Decode one H264 rectangle and paint its picture into ``image`` at the rectangle:
        straight into ``pixels`` (the memory under ``image``, or ``None`` when it has none of
        its own) through libyuv when both allow, else as a picture pasted. ``False`` when the
        unit is refused or fails (the last pixels stay; see :meth:`decode`).

        Raises ``ValueError`` before writing anything if the rectangle does not lie within
        ``pixels`` (the framebuffer refuses such a rectangle before it gets here), and
        :class:`RemoteProtocolError` as :meth:`decode` does."""
        picture = self.decode(rect)
        if picture is None:
            return False
        if pixels is not None and self._convert is not None and _libyuv_can(picture):
            target = pixels.offset(rect.x, rect.y, rect.w, rect.h)
            if not self._convert_into(picture, target, pixels.stride):
                return True
        image.paste(self.image(picture), (rect.x, rect.y))
        return True

    def decode(self, rect: Rect) -> Any | None:
        """The decoded picture (a PyAV ``VideoFrame`` of exactly the rectangle's size) of one
        H264 rectangle, or ``None`` when it is refused or fails (the stream then waits for a
        key unit, which :meth:`take_requests` asks for).

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
        return picture

    def image(self, picture: Any) -> Image.Image:
        """A decoded picture (a PyAV ``VideoFrame``) as a Pillow image of its size: ``RGBA``
        sharing this object's buffer (overwritten by the next call) through libyuv, or a new
        ``RGB`` image through ``to_image`` (see the module docstring)."""
        if self._convert is None or not _libyuv_can(picture):
            image: Image.Image = picture.to_image()
            return image
        w, h = picture.width, picture.height
        if len(self._rgba) != w * h * 4:
            self._rgba = bytearray(w * h * 4)
            self._rgba_view = ctypes.c_char.from_buffer(self._rgba)
        if self._convert_into(picture, ctypes.addressof(self._rgba_view), w * 4):
            image = picture.to_image()
            return image
        return Image.frombuffer("RGBA", (w, h), self._rgba, "raw", "RGBA", 0, 1)

    def _convert_into(self, picture: Any, target: int, stride: int) -> int:
        """libyuv's ``I420ToABGR`` of ``picture`` (checked by :func:`_libyuv_can`) to R, G,
        B, A rows of ``stride`` bytes from address ``target``, which the caller has checked
        can hold the picture's size; 0 on success."""
        luma, cb, cr = picture.planes
        assert self._convert is not None
        failed: int = self._convert(luma.buffer_ptr, luma.line_size, cb.buffer_ptr, cb.line_size,
                                    cr.buffer_ptr, cr.line_size, target, stride, picture.width,
                                    picture.height)
        return failed

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


def _libyuv_can(picture: Any) -> bool:
    """Whether ``picture`` has the colours libyuv converts (:data:`LIBYUV_COLORSPACES`) and
    planes as large as its size says (libyuv reads them through bare pointers)."""
    if (picture.format.name != "yuv420p" or picture.colorspace not in LIBYUV_COLORSPACES
            or picture.color_range == FULL_RANGE):
        return False
    w, h = picture.width, picture.height
    sizes = ((w, h), ((w + 1) // 2, (h + 1) // 2), ((w + 1) // 2, (h + 1) // 2))
    return all(plane.line_size >= pw and plane.buffer_size >= plane.line_size * ph
               for plane, (pw, ph) in zip(picture.planes, sizes, strict=True))


def _decoder() -> Any:
    """A fresh H.264 decoder: one thread (frame threads add a frame of delay each), low
    delay (a picture out per unit), errors raised rather than concealed."""
    import av

    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1
    decoder.flags |= av.codec.context.Flags.low_delay
    decoder.options = {"err_detect": "explode"}
    return decoder
