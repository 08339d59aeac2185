"""The viewer's copy of the host screen, kept up to date from updates.

Every rectangle is checked before it is decoded: its image format must match its declared
encoding, and the image's own declared size must not exceed the rectangle (a hostile host
cannot make a viewer decode a gigantic image). Decoded images smaller than the rectangle were
downscaled by the host and are scaled back up.

The work one update may cause is bounded too (issue 20): a screen larger than the viewer
accepts (``max_pixels``) is refused before its image is allocated, and an update whose
rectangles touch more than :data:`UPDATE_BUDGET` screens' worth of pixels is refused before
any of them is painted — 1.4 KB of copy rectangles could otherwise ask for a billion pixel
copies. A corrupt image closes the connection rather than being skipped: the bytes arrived
intact under TLS, so the host produced them (docs/security.md).
"""

from __future__ import annotations

import io
import threading
import warnings

from PIL import Image

from rdesk.client.pixels import Pixels, mapped_rgb
from rdesk.client.upscale import Upscaler
from rdesk.client.video import VideoDecoders
from rdesk.protocol import limits
from rdesk.protocol.codec import copy_source
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import CloseCode, RemoteProtocolError
from rdesk.protocol.updates import Rect, Update

__all__ = ["DEFAULT_MAX_SCREEN_PIXELS", "DEFAULT_MAX_SCREEN_SIDE", "UPDATE_BUDGET",
           "Framebuffer", "ScreenTooLarge"]

#: The side of the largest square screen a viewer accepts by default.
DEFAULT_MAX_SCREEN_SIDE = 8192
#: The largest screen a viewer accepts, in pixels (8192×8192: 192 MiB of RGB).
DEFAULT_MAX_SCREEN_PIXELS = DEFAULT_MAX_SCREEN_SIDE * DEFAULT_MAX_SCREEN_SIDE
#: Pixels one update may touch, in screens: a real one repaints the screen at most once and
#: copies (scrolls) at most once more (the host splits rounds that would touch more, e.g.
#: several units of one video stream).
UPDATE_BUDGET = limits.MAX_UPDATE_SCREENS

_FORMATS = {Encoding.JPEG: "JPEG", Encoding.PNG: "PNG", Encoding.WEBP: "WEBP"}


class ScreenTooLarge(RemoteProtocolError):
    """The host's screen has more pixels than this viewer accepts (``TOO_BIG``)."""


class Framebuffer:
    """An RGB image of the host's screen.

    :attr:`image` is a PIL image the caller may read (copy it before keeping it across
    updates); its pixels live in memory of its own (:mod:`rdesk.client.pixels`), which video
    pictures are converted straight into. A resize makes a new image: one taken before stays
    valid, with the old size and contents. :meth:`apply` raises :class:`RemoteProtocolError`
    for a rectangle that cannot be decoded safely; the rectangles before it stay applied.
    """

    def __init__(self, width: int, height: int, *,
                 max_pixels: int = DEFAULT_MAX_SCREEN_PIXELS, video: bool = False) -> None:
        #: The largest screen accepted, in pixels (raises ``TOO_BIG`` beyond it).
        self.max_pixels = max_pixels
        #: The video decoders, when this viewer declared video (rdesk/client/video.py).
        self.video = VideoDecoders() if video else None
        self._upscaler = Upscaler()
        self._check_size(width, height)
        self.image: Image.Image
        self._pixels: Pixels | None
        self.image, self._pixels = mapped_rgb(width, height)
        #: True once an update flagged ``exact`` was applied and nothing lossy followed.
        self.exact = False

    def _check_size(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise ScreenTooLarge(
                f"the host's screen is {width}x{height}, over this viewer's limit of "
                f"{self.max_pixels} pixels", CloseCode.TOO_BIG)

    @property
    def pixels(self) -> Pixels | None:
        """The memory under :attr:`image` (``None`` if this Pillow cannot map it); read it
        before :attr:`image` and check the sizes match (a resize replaces both)."""
        return self._pixels

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def resize(self, width: int, height: int) -> None:
        """Start afresh at a new screen size (after a Screen message)."""
        self._check_size(width, height)
        self.image, self._pixels = mapped_rgb(width, height)
        self.exact = False
        if self.video is not None:
            self.video.reset()

    def screens(self, update: Update) -> float:
        """The pixels ``update`` touches, in screens of the current size (what the viewer's
        per-second budget is charged, rdesk/client/painter.py).

        Raises ``TOO_BIG`` if that is more than :data:`UPDATE_BUDGET` screens."""
        width, height = self.image.size
        touched = sum(rect.w * rect.h for rect in update.rects)
        budget = UPDATE_BUDGET * width * height
        if touched > budget:
            raise RemoteProtocolError(
                f"an update touching {touched} pixels, over the limit of {budget} "
                f"({UPDATE_BUDGET} screens)", CloseCode.TOO_BIG)
        return touched / (width * height)

    def apply(self, update: Update,
              stop: threading.Event | None = None) -> list[tuple[int, int, int, int]]:
        """Paint every rectangle of ``update``; return the painted (x, y, w, h) areas.

        Raises ``TOO_BIG`` before painting anything if the rectangles touch more than
        :data:`UPDATE_BUDGET` screens of pixels. Once ``stop`` is set (the connection is
        closing) the rest of the rectangles are left unpainted: a worker thread cannot be
        cancelled, but it can stop between rectangles."""
        self.screens(update)
        painted: list[tuple[int, int, int, int]] = []
        for rect in update.rects:
            if stop is not None and stop.is_set():
                return painted  # not exact: part of the update is missing
            self._apply_rect(rect)
            painted.append((rect.x, rect.y, rect.w, rect.h))
        self.exact = update.exact
        return painted

    def _apply_rect(self, rect: Rect) -> None:
        width, height = self.image.size
        if rect.x + rect.w > width or rect.y + rect.h > height:
            raise RemoteProtocolError("rect lies outside the framebuffer")
        if rect.encoding is Encoding.COPY:
            src_x, src_y = copy_source(rect)
            if src_x + rect.w > width or src_y + rect.h > height:
                raise RemoteProtocolError("copy rect source lies outside the framebuffer")
            region = self.image.crop((src_x, src_y, src_x + rect.w, src_y + rect.h))
            self.image.paste(region, (rect.x, rect.y))
            return
        if rect.encoding is Encoding.H264:
            if self.video is None:
                raise RemoteProtocolError("an H264 rect, but this viewer declared no video")
            # Converted into the image's own memory (checked above to hold the rect); a
            # refused unit leaves the last pixels.
            self.video.paint(rect, self.image, self._pixels)
            return
        tile = decode_tile(rect)
        # A half- or quarter-scale tile is scaled up straight into the image's memory.
        if not self._upscaler.paint(tile, self._pixels, (rect.x, rect.y, rect.w, rect.h)):
            self.image.paste(fit_tile(tile, rect), (rect.x, rect.y))


def decode_image(rect: Rect) -> Image.Image:
    """Decode an image rectangle to RGB at exactly (w, h), checking it first.

    Raises :class:`RemoteProtocolError` if the payload is not an image of the declared
    encoding, declares a size larger than the rectangle, or fails to decode.
    """
    return fit_tile(decode_tile(rect), rect)


def decode_tile(rect: Rect) -> Image.Image:
    """Decode an image rectangle to RGB at the image's own size (at most the rectangle's),
    checking it first; raises as :func:`decode_image` does."""
    expected = _FORMATS[rect.encoding]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Image.open reads only the header: the size is known before any pixel is decoded.
            image: Image.Image = Image.open(io.BytesIO(rect.payload), formats=[expected])
            iw, ih = image.size
            if not (1 <= iw <= rect.w and 1 <= ih <= rect.h):
                raise RemoteProtocolError(
                    f"{expected} image declares {iw}x{ih} for a {rect.w}x{rect.h} rect"
                )
            image.load()
    except RemoteProtocolError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise RemoteProtocolError(f"cannot decode {expected} rect: {type(exc).__name__}") from exc
    return image if image.mode == "RGB" else image.convert("RGB")


def fit_tile(image: Image.Image, rect: Rect) -> Image.Image:
    """``image`` (a decoded tile) at the rectangle's size: itself, a fill for one pixel, or
    scaled up (the host sent it scaled down)."""
    if image.size == (1, 1) and (rect.w, rect.h) != (1, 1):
        # A solid region sent as one pixel: a fill, not a resize (which costs milliseconds).
        return Image.new("RGB", (rect.w, rect.h), image.getpixel((0, 0)))
    if image.size != (rect.w, rect.h):
        image = image.resize((rect.w, rect.h), Image.Resampling.BILINEAR)
    return image
