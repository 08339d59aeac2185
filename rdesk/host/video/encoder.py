"""One H.264 stream's encoder: libx264 through PyAV, the host's only importer of ``av``.

x264 ``ultrafast`` with ``tune=zerolatency`` (no lookahead, no frame delay: every frame in
gives its access unit out at once), Baseline profile (no B-frames, so decode order is output
order, and every browser's decoder takes it), 4:2:0 8-bit, average bitrate with a VBV buffer
of :data:`VBV_SECONDS` (at most :data:`VBV_MAX_BITS`) so a key unit cannot be a burst of
seconds on a slow link, nor a fifth of a second on a fast one. SPS and PPS
go in front of every IDR (x264's repeat-headers, the default without global headers), and the
SPS's VUI describes the colours: BT.601 (SMPTE 170M primaries, transfer and matrix) at limited
range, the protocol's colour rule (docs/protocol.md, "Video").

Colour conversion (:class:`Converter`): the captured BGRA pixels go to 4:2:0 BT.601 limited
range in one pass, with libyuv's ``ARGBToI420`` (SIMD; Debian's ``libyuv0``) writing straight
into the planes of a picture reused for every frame, read from the capture in place (no copy).
Without libyuv, swscale does it from the capture in place (a cached context, one thread).
Measured on a 1080p photo pan (benchmarks/bench_video.py): 1.0–1.3 ms of CPU for libyuv
against 5–7 ms for swscale. x264 runs on one thread: two sliced threads took no less CPU per
frame (``--x264-threads 2``: within the same spread on a loaded machine), and the round's
tiles are encoded beside it on the other core.

The bitrate is fixed for the encoder's life: PyAV cannot reach libx264's rate reconfiguration
(measured: a changed ``bit_rate`` is ignored), so :mod:`rdesk.host.video.streams` makes a new
encoder, and a key unit, when the controller's target moves far enough.
"""

from __future__ import annotations

import fractions
import functools
from typing import Any

import numpy as np

from rdesk.common import yuv

__all__ = ["VBV_MAX_BITS", "VBV_SECONDS", "Converter", "H264Encoder", "available", "libyuv"]

#: Seconds of bitrate in the rate control's buffer: the largest single unit is about this
#: (a key unit: 0.3 s of a low rate left it too poor to recover from for seconds) ...
VBV_SECONDS = 0.5
#: ... but never more than this many bits (125 kB): a key unit is then at most about 0.1 s
#: of a 10 Mbit/s link, whatever the stream's rate. At 7.5 Mbit/s half a second let a 1080p
#: photo's key unit be 235 kB, 0.19 s of that link and 6 frames not sent behind it; within
#: 1 Mbit it is 98 kB (Y PSNR 33.1 against 35.5 dB for that first frame, 47.2 against 47.8
#: two to five seconds on, and the largest P unit of the first two seconds 41 kB against 71).
#: Rates up to 2 Mbit/s (VBV_SECONDS of them fit) are not changed.
VBV_MAX_BITS = 1_000_000
#: Frames between forced IDRs when nobody asks: a bound on how long a lost viewer state lasts.
KEYINT = 600
#: The frame rate x264's rate control plans for unless told another (each frame gets
#: 1/rate of the bitrate): video rounds come about this often (a 60 fps source's group of
#: viewers is told 60, rdesk/host/video/shared.py).
FRAME_RATE = 30
#: The SPS's colour description (x264's names): BT.601 525-line primaries, transfer and
#: matrix. The range is the codec context's (:data:`LIMITED_RANGE`): libavcodec refuses
#: x264's own ``range`` option ("Error parsing option 'range = tv'", measured with PyAV 18),
#: so naming it here only logged a warning for every encoder.
COLOUR_PARAMS = "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m"
#: libavcodec's AVCOL_RANGE_MPEG: limited range, the SPS's video_full_range_flag 0.
LIMITED_RANGE = 1
#: x264's options beyond the preset and tune: the colours, and no DCT decimation (zeroing a
#: P macroblock's few small coefficients after scoring every block for it): 13 % less of
#: x264's CPU a 1080p photo-pan frame at 7.5 and 3 Mbit/s (9.7 → 8.4 ms, 9.3 → 8.1 ms), 10 %
#: at 1.2 Mbit/s, with 0.7 % more bytes at 7.5 Mbit/s and PSNR within 0.1 dB either way
#: (docs/performance.md, "Issue 16, eighth session: CPU per video frame")
X264_PARAMS = f"{COLOUR_PARAMS}:dct-decimate=0"


@functools.cache
def available() -> bool:
    """Whether PyAV with libx264 can be used here (the host offers no video otherwise)."""
    try:
        import av
    except ImportError:
        return False
    try:
        av.codec.Codec("libx264", "w")
    except Exception:  # any failure means no encoder: tiles then
        return False
    return True


def libyuv() -> Any | None:
    """libyuv's ``ARGBToI420`` (ctypes, :mod:`rdesk.common.yuv`), or ``None`` when the library
    is not installed."""
    return yuv.function("ARGBToI420")


class Converter:
    """BGRA pixels to a 4:2:0 BT.601 limited-range picture of ``size``, reused (one thread at a
    time; the picture returned is overwritten by the next call).

    :param use_libyuv: ``False`` forces the swscale path (tests compare both).
    """

    def __init__(self, size: tuple[int, int], use_libyuv: bool = True) -> None:
        import av
        from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

        self.size = size
        self._av = av
        self._convert = libyuv() if use_libyuv else None
        self.picture = av.VideoFrame(*size, "yuv420p")
        # (address, stride) of each plane, which libyuv writes into.
        self._planes = [(np.frombuffer(memoryview(p), np.uint8).ctypes.data, p.line_size)
                        for p in self.picture.planes]
        self._reformatter = VideoReformatter()
        self._itu601, self._limited = Colorspace.ITU601, ColorRange.MPEG

    @property
    def uses_libyuv(self) -> bool:
        return self._convert is not None

    def convert(self, pixels: np.ndarray) -> Any:
        """The picture of ``pixels`` (h, w, 4 BGRA uint8; a slice of the captured frame is
        read in place)."""
        h, w = pixels.shape[:2]
        if (w, h) != self.size or pixels.shape[2:] != (4,) or pixels.dtype != np.uint8:
            raise ValueError(f"pixels {pixels.shape} {pixels.dtype} are not {self.size} BGRA")
        if pixels.strides[1:] != (4, 1):  # not rows of packed pixels: one copy makes them
            pixels = np.ascontiguousarray(pixels)
        if self._convert is None:
            source = self._av.VideoFrame.from_numpy_buffer(pixels, format="bgra")
            return self._reformatter.reformat(
                source, format="yuv420p", src_colorspace=self._itu601,
                dst_colorspace=self._itu601, dst_color_range=self._limited, threads=1)
        (y, y_stride), (u, u_stride), (v, v_stride) = self._planes
        # libyuv's "ARGB" is little-endian words: B, G, R, A in memory, the capture's order.
        failed = self._convert(pixels.ctypes.data, pixels.strides[0], y, y_stride, u, u_stride,
                               v, v_stride, w, h)
        if failed:
            raise RuntimeError(f"ARGBToI420 failed ({failed})")
        return self.picture


class H264Encoder:
    """Encodes ``w`` x ``h`` pictures cut from BGRA frames; one thread at a time.

    :param size: (w, h), both even.
    :param bitrate: bits per second the rate control aims for.
    :param threads: x264's threads (sliced: no added delay); 1, see the module docstring.
    :param fps: the frames a second the rate control budgets for: each frame gets
        ``bitrate / fps`` bits on average (pictures are numbered, not stamped: frame-stamped
        timing cost a frame of output delay).
    """

    def __init__(self, size: tuple[int, int], bitrate: int, threads: int = 1,
                 fps: int = FRAME_RATE) -> None:
        import av

        width, height = size
        if width % 2 or height % 2:
            raise ValueError(f"video size {size} must be even")
        if not 1 <= fps <= 240:
            raise ValueError(f"video frame rate {fps} is not 1-240")
        self.size = size
        self.bitrate = bitrate
        self.fps = fps
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.color_range = LIMITED_RANGE
        ctx.time_base = fractions.Fraction(1, fps)
        ctx.framerate = fractions.Fraction(fps)
        ctx.bit_rate = bitrate
        ctx.thread_count = threads
        ctx.options = {
            "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
            "forced-idr": "1", "g": str(KEYINT), "bf": "0",
            "maxrate": str(bitrate),
            "bufsize": str(int(min(bitrate * VBV_SECONDS, VBV_MAX_BITS))),
            "x264-params": X264_PARAMS,
        }  # fmt: skip
        ctx.open()
        self._ctx = ctx
        self._types = av.video.frame.PictureType
        self._converter = Converter(size)
        self._pts = 0
        #: Frames encoded, and the key units among them.
        self.frames = 0
        self.keys = 0

    def encode(self, frame: np.ndarray, rect: tuple[int, int, int, int], key: bool
               ) -> tuple[bytes, bool]:
        """The access unit of ``rect`` of ``frame`` (H, W, 4 BGRA), and whether it is a key
        unit (always when ``key`` is asked, and for the first frame)."""
        x, y, w, h = rect
        if (w, h) != self.size:
            raise ValueError(f"rect {rect} is not this stream's {self.size}")
        picture = self._converter.convert(frame[y : y + h, x : x + w])
        picture.pts = self._pts
        self._pts += 1
        # The picture is reused: its type must be set (or cleared) on every frame.
        key = key or self.frames == 0
        picture.pict_type = self._types.I if key else self._types.NONE
        packets = self._ctx.encode(picture)
        unit = b"".join(bytes(p) for p in packets)
        is_key = any(p.is_keyframe for p in packets)
        self.frames += 1
        self.keys += is_key
        return unit, is_key
