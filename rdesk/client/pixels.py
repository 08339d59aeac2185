"""The framebuffer's pixel memory: a Pillow ``RGB`` image over a bytearray a converter writes.

Pillow keeps an ``RGB`` image as 4 bytes a pixel (R, G, B and a pad byte it ignores), rows
packed one after another when the image is mapped over a buffer. :func:`mapped_rgb` makes such
an image over a bytearray this module owns, so libyuv's ``I420ToABGR`` (R, G, B, A in memory)
can convert a decoded video picture straight into the framebuffer at its rectangle's offset and
stride (rdesk/client/video.py): no intermediate picture, no paste. The image stays an ordinary
writable ``RGB`` image for everything else (tiles pasted, copies, the Tk painter's crops,
``tobytes``, saving).

Pillow offers this mapping only for some modes through ``Image.frombuffer`` (and marks those
read-only); for ``RGB`` it is the same ``map_buffer`` call made directly. If a Pillow ever
lays the mapped image out otherwise, or refuses it, :func:`mapped_rgb` notices (it probes the
layout once per image) and answers a plain image without :class:`Pixels`: the video path then
converts into a picture of its own and pastes it, as before.
"""

from __future__ import annotations

import ctypes

from PIL import Image

__all__ = ["BYTES_PER_PIXEL", "Pixels", "mapped_rgb"]

#: Bytes of one pixel in the mapped memory: R, G, B and Pillow's pad byte.
BYTES_PER_PIXEL = 4


class Pixels:
    """The memory under a mapped ``RGB`` image of ``width`` x ``height``: rows of
    ``stride = width * 4`` bytes, R, G, B, pad per pixel, from :attr:`address`.

    The image's mapping holds an export of the bytearray for as long as the image lives, so
    the memory can neither be resized nor moved while anyone may still read the image; this
    object holds one as well (its ctypes view), so :attr:`address` stays valid while it lives.
    """

    __slots__ = ("_view", "address", "buffer", "height", "stride", "width")

    def __init__(self, buffer: bytearray, width: int, height: int) -> None:
        if len(buffer) != width * height * BYTES_PER_PIXEL:
            raise ValueError(f"{len(buffer)} bytes do not hold {width}x{height} pixels")
        self.buffer = buffer
        self.width, self.height = width, height
        self.stride = width * BYTES_PER_PIXEL
        self._view = (ctypes.c_char * len(buffer)).from_buffer(buffer)
        self.address = ctypes.addressof(self._view)

    def offset(self, x: int, y: int, w: int, h: int) -> int:
        """The address of pixel (x, y), once the box (x, y, w, h) is checked to lie within
        the memory (raises ``ValueError`` otherwise: nothing may be written outside it)."""
        if not (w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= self.width
                and y + h <= self.height):
            raise ValueError(f"box {(x, y, w, h)} is not within {self.width}x{self.height}")
        return self.address + y * self.stride + x * BYTES_PER_PIXEL


def mapped_rgb(width: int, height: int) -> tuple[Image.Image, Pixels | None]:
    """A black ``RGB`` image of ``width`` x ``height`` and the :class:`Pixels` under it; or a
    plain image and ``None`` when this Pillow cannot map one (see the module docstring)."""
    buffer = bytearray(width * height * BYTES_PER_PIXEL)
    try:
        core = Image.core.map_buffer(buffer, (width, height), "raw", 0, ("RGB", 0, 1))
        image = Image.Image()._new(core)
    except Exception:  # not this Pillow's internals: the plain image, the paste path
        return Image.new("RGB", (width, height)), None
    if image.mode != "RGB" or image.size != (width, height) or not _laid_out(image, buffer):
        return Image.new("RGB", (width, height)), None
    image.readonly = 0  # written in place (a read-only image would copy itself on write)
    return image, Pixels(buffer, width, height)


def _laid_out(image: Image.Image, buffer: bytearray) -> bool:
    """Whether ``image`` reads ``buffer`` as packed rows of R, G, B, pad: a probe of the last
    pixel (its row and column both depend on the stride), then black again."""
    width, height = image.size
    last = len(buffer) - BYTES_PER_PIXEL
    buffer[last : last + 3] = b"\x01\x02\x03"
    try:
        return image.getpixel((width - 1, height - 1)) == (1, 2, 3) and (
            width * height == 1 or image.getpixel((0, 0)) == (0, 0, 0))
    finally:
        buffer[last : last + 3] = b"\x00\x00\x00"
