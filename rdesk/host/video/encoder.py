"""One H.264 stream's encoder: libx264 through PyAV, the host's only importer of ``av``.

x264 ``ultrafast`` with ``tune=zerolatency`` (no lookahead, no frame delay: every frame in
gives its access unit out at once), Baseline profile (no B-frames, so decode order is output
order, and every browser's decoder takes it), 4:2:0 8-bit, average bitrate with a VBV buffer
of :data:`VBV_SECONDS` so a key unit cannot be a burst of seconds on a slow link. SPS and PPS
go in front of every IDR (x264's repeat-headers, the default without global headers).

The bitrate is fixed for the encoder's life: PyAV cannot reach libx264's rate reconfiguration
(measured: a changed ``bit_rate`` is ignored), so :mod:`rdesk.host.video.streams` makes a new
encoder, and a key unit, when the controller's target moves far enough.
"""

from __future__ import annotations

import fractions
import functools

import numpy as np

__all__ = ["VBV_SECONDS", "H264Encoder", "available"]

#: Seconds of bitrate in the rate control's buffer: the largest single unit is about this
#: (a key unit: 0.3 s of a low rate left it too poor to recover from for seconds).
VBV_SECONDS = 0.5
#: Frames between forced IDRs when nobody asks: a bound on how long a lost viewer state lasts.
KEYINT = 600
#: The rate x264's rate control plans for; rounds come at most this often.
FRAME_RATE = 30


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


class H264Encoder:
    """Encodes ``w`` x ``h`` pictures cut from BGRA frames; one thread at a time.

    :param size: (w, h), both even.
    :param bitrate: bits per second the rate control aims for.
    """

    def __init__(self, size: tuple[int, int], bitrate: int) -> None:
        import av

        width, height = size
        if width % 2 or height % 2:
            raise ValueError(f"video size {size} must be even")
        self.size = size
        self.bitrate = bitrate
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = fractions.Fraction(1, FRAME_RATE)
        ctx.framerate = fractions.Fraction(FRAME_RATE)
        ctx.bit_rate = bitrate
        ctx.thread_count = 2  # sliced threads under zerolatency: no added delay
        ctx.options = {
            "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
            "forced-idr": "1", "g": str(KEYINT), "bf": "0",
            "maxrate": str(bitrate), "bufsize": str(int(bitrate * VBV_SECONDS)),
        }  # fmt: skip
        ctx.open()
        self._ctx = ctx
        self._av = av
        self._frame = av.VideoFrame(width, height, "bgra")
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
        # One copy, straight into the frame's buffer; then one sws pass to 4:2:0.
        plane = self._frame.planes[0]
        stride = plane.line_size
        view = np.frombuffer(memoryview(plane), np.uint8).reshape(h, stride)[:, : w * 4]
        view.reshape(h, w, 4)[:] = frame[y : y + h, x : x + w]
        picture = self._frame.reformat(format="yuv420p")
        picture.pts = self._pts
        self._pts += 1
        if key or self.frames == 0:
            picture.pict_type = self._av.video.frame.PictureType.I
        packets = self._ctx.encode(picture)
        unit = b"".join(bytes(p) for p in packets)
        is_key = any(p.is_keyframe for p in packets)
        self.frames += 1
        self.keys += is_key
        return unit, is_key
