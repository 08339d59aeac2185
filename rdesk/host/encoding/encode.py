"""Rectangle encoding: the host's only importer of Pillow and simplejpeg.

A rectangle of a BGRA frame becomes JPEG (lossy, with simplejpeg: libjpeg-turbo reading the
BGRX pixels in place, with the GIL released so bands encode on several cores at once) or
WebP-lossless (pixel-exact; PNG beyond WebP's size limit); a cheap content classifier can send
photo-like regions as high-quality JPEG instead of lossless when the caller allows it, and
flat regions (text: a few colours) losslessly where JPEG was asked for, as that is smaller.
:class:`EncodeCache` lets several viewers that ask for the same pixels at the same settings
share one encode.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image

from rdesk.protocol.encodings import Encoding

__all__ = [
    "solid_colour",
    "EncodeCache",
    "EncodedRect",
    "Rect",
    "encode_rect",
    "is_flat",
    "is_photo_like",
    "split_rect",
]

#: ``(x, y, w, h)`` in pixels.
Rect = tuple[int, int, int, int]

# Classifier: fraction of distinct colours among sampled pixels above which content is treated
# as photo-like. UI and text rarely exceed ~10 % (flat fills, antialiased glyph ramps); photos
# and video are far above 50 %. Tuned with benchmarks/bench_pipeline.py.
_PHOTO_DISTINCT_FRACTION = 0.30
_SAMPLE_TARGET = 4096
# Rects smaller than this are never classified: the choice hardly matters and costs more.
_MIN_CLASSIFY_PIXELS = 64 * 64
# WebP cannot encode images wider or taller than this.
_WEBP_MAX_SIDE = 16383
# Lossy requests for flat content are encoded losslessly instead (``exact_if_flat``): among the
# ~4096 sampled pixels, at most _FLAT_FEW_COLOURS distinct colours, or at most
# _FLAT_MAX_COLOURS of which the _FLAT_TOP most frequent cover _FLAT_TOP_SHARE of the samples.
# A terminal's text has 2 colours (bitmap font) or 60-150 with 94-95 % in the top 8
# (antialiased, 1080p bands), plain UI a few dozen; a photo has over 1200, and the tests'
# pattern (a colour per tile, gradients, noise) 120-260 per tile with 87 % in the top 8.
# Measured on a 1920x1080 xterm: WebP-lossless 48 kB against 618 kB as JPEG q80 (bitmap font;
# 153 kB at q80 1/2 scale, unreadable and owing a refresh), 104 kB against 631 kB
# antialiased, for 63-95 ms of CPU against 12-26 ms.
_FLAT_FEW_COLOURS = 64
_FLAT_MAX_COLOURS = 256
_FLAT_TOP = 8
_FLAT_TOP_SHARE = 0.9
# JPEG quality used instead of lossless for photo-like content when a lossy fallback is allowed.
_FALLBACK_JPEG_QUALITY = 92


@dataclass(frozen=True)
class EncodedRect:
    """One encoded rectangle, ready to be framed by the protocol.

    ``x, y, w, h`` are the rectangle on the host screen, in pixels. The decoded payload image is
    ``w`` x ``h`` unless the rectangle was downscaled, in which case it is smaller and the viewer
    scales it back up to ``w`` x ``h``. ``exact`` is True only if decoding the payload yields
    exactly the screen pixels (lossless codec and no scaling).
    """

    x: int
    y: int
    w: int
    h: int
    encoding: Encoding
    payload: bytes
    exact: bool = False


def _check_rect(frame: npt.NDArray[np.uint8], rect: Rect) -> None:
    if frame.ndim != 3 or frame.shape[2] != 4 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 4) uint8, got {frame.shape} {frame.dtype}")
    x, y, w, h = rect
    fh, fw = frame.shape[0], frame.shape[1]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > fw or y + h > fh:
        raise ValueError(f"rect {rect} is empty or outside the {fw}x{fh} frame")


def _to_image(frame: npt.NDArray[np.uint8], rect: Rect) -> Image.Image:
    """RGB image of ``rect``, converted from BGRA in one C pass with no intermediate copy."""
    x, y, w, h = rect
    if not frame.flags.c_contiguous:
        frame = np.ascontiguousarray(frame)
    stride = frame.shape[1] * 4
    flat = frame.reshape(-1)[(y * frame.shape[1] + x) * 4 :]
    # The raw decoder reads h rows of w pixels at the given stride, skipping the BGRA "A".
    return Image.frombuffer("RGB", (w, h), flat, "raw", "BGRX", stride, 1)


def _sample(frame: npt.NDArray[np.uint8], rect: Rect) -> npt.NDArray[np.uint32]:
    """About 4096 pixels of ``rect`` on a regular grid, as 24-bit colours (~0.05 ms)."""
    x, y, w, h = rect
    step = max(1, int((w * h / _SAMPLE_TARGET) ** 0.5))
    sample = np.ascontiguousarray(frame[y : y + h : step, x : x + w : step])
    colours: npt.NDArray[np.uint32] = sample.view(np.uint32).reshape(-1) & np.uint32(0x00FFFFFF)
    return colours


def is_photo_like(frame: npt.NDArray[np.uint8], rect: Rect) -> bool:
    """Guess whether ``rect`` holds photo/video-like content (many distinct colours).

    Samples at most about 4096 pixels on a regular grid and counts distinct colours; about
    0.1 ms whatever the rectangle size. Small rectangles are reported as not photo-like.
    """
    _check_rect(frame, rect)
    if rect[2] * rect[3] < _MIN_CLASSIFY_PIXELS:
        return False
    colours = _sample(frame, rect)
    return bool(np.unique(colours).size > _PHOTO_DISTINCT_FRACTION * colours.size)


def is_flat(frame: npt.NDArray[np.uint8], rect: Rect) -> bool:
    """Whether ``rect`` holds flat content — text, plain UI: among about 4096 sampled pixels,
    few distinct colours, or not many of which a handful cover nearly all (see
    :data:`_FLAT_MAX_COLOURS`); ~0.1 ms. Small rectangles (under 64x64 pixels) are reported
    as not flat: they are not worth it."""
    _check_rect(frame, rect)
    if rect[2] * rect[3] < _MIN_CLASSIFY_PIXELS:
        return False
    colours = _sample(frame, rect)
    _, counts = np.unique(colours, return_counts=True)
    if counts.size <= _FLAT_FEW_COLOURS:
        return True
    if counts.size > _FLAT_MAX_COLOURS:
        return False
    top = np.partition(counts, counts.size - _FLAT_TOP)[-_FLAT_TOP:]
    return bool(top.sum() >= _FLAT_TOP_SHARE * colours.size)


def _scaled(im: Image.Image, scale: float) -> Image.Image:
    if scale >= 1.0:
        return im
    if scale <= 0.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    inv = 1.0 / scale
    n = round(inv)
    if n >= 2 and abs(inv - n) < 1e-6:
        return im.reduce(n)  # box filter, fastest for 1/2, 1/3, ...
    w, h = im.size
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(size, Image.Resampling.BILINEAR)


def _jpeg(pixels: npt.NDArray[np.uint8], quality: int) -> bytes:
    """Baseline JPEG of ``pixels``: (h, w, 4) BGRX straight from the frame, or (h, w, 3) RGB.

    simplejpeg takes the frame's rows at their stride, so no RGB copy is made (Pillow's
    BGRX→RGB unpack cost about 2 ms a 1080p frame), and it releases the GIL while encoding.
    """
    # 4:2:0 halves the data; at high quality chroma detail (coloured text) is worth keeping.
    subsampling = "444" if quality >= 90 else "420"
    colorspace = "BGRX" if pixels.shape[2] == 4 else "RGB"
    payload: bytes = simplejpeg.encode_jpeg(pixels, quality, colorspace, subsampling, fastdct=True)
    return payload


def _webp_lossless(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    # For lossless WebP, quality is effort: 0 with method 0 is libwebp's fastest setting.
    im.save(buf, "WEBP", lossless=True, method=0, quality=0, exact=True)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def encode_rect(
    frame: npt.NDArray[np.uint8],
    rect: Rect,
    *,
    lossless: bool,
    quality: int,
    scale: float = 1.0,
    allow_lossy_fallback: bool = False,
    exact_if_flat: bool = False,
) -> EncodedRect:
    """Encode ``rect`` of a BGRA ``frame``; pure function of its arguments.

    - ``lossless=False``: baseline JPEG at ``quality`` (1..100), 4:2:0 below 90, 4:4:4 from 90,
      no optimisation pass.
    - ``lossless=True``: WebP-lossless at its fastest effort; PNG (compress level 1) only for
      rectangles wider or taller than WebP's 16383-pixel limit. Measured at 1080p, WebP m0 beats
      PNG-1 on UI content (17 ms / 110 kB vs 36 ms / 235 kB) and on photo-like content
      (59 ms / 5.1 MB vs 237 ms / 4.9 MB), so no classifier is needed to stay exact.
      If ``allow_lossy_fallback`` is True, photo-like content (:func:`is_photo_like`) is sent
      as JPEG q92 4:4:4 instead, far smaller and faster but not pixel-exact.
    - ``scale`` < 1 downscales first (box filter for 1/n, else bilinear); the result is then
      never ``exact``.
    - ``exact_if_flat``: a lossy request for flat content (:func:`is_flat`: text, plain UI) is
      encoded as if ``lossless`` were True, at full scale: for such content the lossless
      encoding is smaller than the JPEG (a 1080p terminal: 48 kB against 618 kB at q80), and
      exact, so it owes no refresh. The caller learns it from ``exact``.

    Raises ValueError for a rect outside the frame, a bad quality or scale.
    """
    _check_rect(frame, rect)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    x, y, w, h = rect
    solid = solid_colour(frame, rect)
    if solid is not None:
        # One pixel the viewer scales up to (w, h): exact, tiny, and far cheaper than any
        # codec on the flat areas UIs are made of (RFB's solid fill, by other means).
        return EncodedRect(x, y, w, h, Encoding.PNG, _png(Image.new("RGB", (1, 1), solid)),
                           exact=True)
    if not lossless and exact_if_flat and is_flat(frame, rect):
        lossless, scale = True, 1.0
    scaled = scale < 1.0
    if not lossless or (allow_lossy_fallback and is_photo_like(frame, rect)):
        pixels = frame[y : y + h, x : x + w]
        if scaled:
            pixels = np.asarray(_scaled(_to_image(frame, rect), scale))
        payload = _jpeg(pixels, quality if not lossless else _FALLBACK_JPEG_QUALITY)
        return EncodedRect(x, y, w, h, Encoding.JPEG, payload, exact=False)
    im = _scaled(_to_image(frame, rect), scale)
    if max(im.size) > _WEBP_MAX_SIDE:
        return EncodedRect(x, y, w, h, Encoding.PNG, _png(im), exact=not scaled)
    return EncodedRect(x, y, w, h, Encoding.WEBP, _webp_lossless(im), exact=not scaled)


def solid_colour(frame: npt.NDArray[np.uint8], rect: Rect) -> tuple[int, int, int] | None:
    """The (r, g, b) of ``rect`` if every pixel has it, else ``None``.

    Compares pixels as whole 32-bit words (the capturer's alpha byte is constant; if it were
    not, the region would merely not count as solid). The first row is checked before the
    whole region, so a busy region is rejected after a few kilobytes.
    """
    x, y, w, h = rect
    region = frame[y : y + h, x : x + w]
    words = region.view(np.uint32).reshape(h, w)
    first = words[0, 0]
    if not (words[0] == first).all() or not (words == first).all():
        return None
    b, g, r = (int(v) for v in region[0, 0, :3])
    return (r, g, b)


def split_rect(rect: Rect, max_w: int = 512, max_h: int = 512) -> list[Rect]:
    """Cut ``rect`` into a grid of pieces no larger than ``max_w`` x ``max_h``.

    The pieces are disjoint, cover ``rect`` exactly and are listed row by row.
    """
    if max_w <= 0 or max_h <= 0:
        raise ValueError("max_w and max_h must be positive")
    x, y, w, h = rect
    return [
        (px, py, min(max_w, x + w - px), min(max_h, y + h - py))
        for py in range(y, y + h, max_h)
        for px in range(x, x + w, max_w)
    ]


class _Pending:
    """An encode in progress that other threads asking for the same key wait on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: EncodedRect | None = None


class EncodeCache:
    """Bounded LRU of encoded rectangles, shared by all viewers of one host.

    Holds at most ``max_entries`` results and ``max_bytes`` of payload (the newest result is
    always kept). Key: ``(frame_id, rect, lossless, quality, scale, allow_lossy_fallback,
    exact_if_flat)``;
    ``quality`` is ignored for lossless requests, so viewers at different JPEG qualities share
    lossless refreshes. ``frame_id`` must identify the frame's pixels (e.g. a capture sequence
    number).

    Safe to call from several threads (e.g. via ``asyncio.to_thread``). The lock is not held
    while encoding; a second caller asking for a key being encoded waits for that encode instead
    of repeating it. Counters: ``hits``, ``misses``, ``encodes`` (encoder invocations).
    """

    def __init__(self, max_entries: int = 1024, max_bytes: int = 32 * 1024 * 1024) -> None:
        if max_entries <= 0 or max_bytes <= 0:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        #: Payload bytes kept at most: full-screen motion fills 1024 entries with ~50 MB of
        #: JPEG of frames long gone (the most recent frames are all any viewer asks for).
        self.max_bytes = max_bytes
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.encodes = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, EncodedRect] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(
        self,
        frame_id: int,
        frame: npt.NDArray[np.uint8],
        rect: Rect,
        *,
        lossless: bool,
        quality: int,
        scale: float = 1.0,
        allow_lossy_fallback: bool = False,
        exact_if_flat: bool = False,
    ) -> EncodedRect:
        """Return the encoding of ``rect`` of ``frame``, encoding it only on a miss.

        Same arguments and result as :func:`encode_rect`, plus ``frame_id``. Exceptions from
        the encoder propagate to every caller waiting for that key; nothing is cached then.
        """
        key = (
            frame_id,
            tuple(rect),
            lossless,
            0 if lossless else quality,
            scale,
            allow_lossy_fallback,
            exact_if_flat and not lossless,
        )
        while True:
            with self._lock:
                hit = self._entries.get(key)
                if hit is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return hit
                pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = _Pending()
                    self.misses += 1
                    self.encodes += 1
                    owner = True
                else:
                    owner = False
            if not owner:
                pending.done.wait()
                if pending.result is not None:
                    with self._lock:
                        self.hits += 1
                    return pending.result
                continue  # the owner failed; try (and probably fail) ourselves
            try:
                result = encode_rect(
                    frame,
                    rect,
                    lossless=lossless,
                    quality=quality,
                    scale=scale,
                    allow_lossy_fallback=allow_lossy_fallback,
                    exact_if_flat=exact_if_flat,
                )
            except BaseException:
                with self._lock:
                    del self._pending[key]
                pending.done.set()  # waiters see no result and retry themselves
                raise
            pending.result = result
            with self._lock:
                del self._pending[key]
                if key not in self._entries:
                    self._bytes += len(result.payload)
                self._entries[key] = result
                self._entries.move_to_end(key)
                while len(self._entries) > 1 and (
                    len(self._entries) > self.max_entries or self._bytes > self.max_bytes
                ):
                    self._bytes -= len(self._entries.popitem(last=False)[1].payload)
            pending.done.set()
            return result
