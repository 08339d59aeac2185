"""Video pictures converted straight into the framebuffer's own pixel memory
(rdesk/client/pixels.py, ``VideoDecoders.paint``): the mapped image, real libx264 units
painted at offsets, at odd sizes and at the screen's edge against PyAV's own decode, units and
rects that must write nothing, and the paths without libyuv or without mapped memory."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV is not installed")

import av
from PIL import Image

from rdesk.client import pixels as pixels_module
from rdesk.client.framebuffer import Framebuffer
from rdesk.client.pixels import Pixels, mapped_rgb
from rdesk.client.video import VideoDecoders
from rdesk.common import yuv
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.updates import Rect, Update
from rdesk.protocol.video import pack_header
from tests.client.test_video_pictures import rgb, stream

needs_libyuv = pytest.mark.skipif(yuv.function("I420ToABGR") is None,
                                  reason="libyuv is not installed (Debian: libyuv0)")


def test_the_mapped_image_is_the_memory() -> None:
    image, pixels = mapped_rgb(5, 3)
    assert pixels is not None
    assert image.mode == "RGB" and image.size == (5, 3) and not image.readonly
    assert len(pixels.buffer) == 5 * 3 * 4 and pixels.stride == 20
    assert image.tobytes() == bytes(5 * 3 * 3)
    pixels.buffer[(2 * 5 + 4) * 4 : (2 * 5 + 4) * 4 + 3] = b"\x0a\x0b\x0c"  # pixel (4, 2)
    assert image.getpixel((4, 2)) == (10, 11, 12)
    image.paste(Image.new("RGB", (2, 1), (1, 2, 3)), (1, 1))
    assert bytes(pixels.buffer[(5 + 1) * 4 : (5 + 1) * 4 + 3]) == b"\x01\x02\x03"
    # Still mapped after Pillow wrote into it: the next write through memory shows.
    pixels.buffer[0:3] = b"\x07\x08\x09"
    assert image.getpixel((0, 0)) == (7, 8, 9)
    with pytest.raises(BufferError):  # the image's mapping pins the memory
        pixels.buffer.extend(b"\0")


@pytest.mark.parametrize("box", [(0, 0, 6, 3), (0, 0, 5, 4), (1, 0, 5, 3), (0, 3, 1, 1),
                                 (-1, 0, 2, 2), (0, 0, 0, 1), (4, 2, 2, 1)])
def test_pixels_refuse_a_box_outside(box: tuple[int, int, int, int]) -> None:
    _, pixels = mapped_rgb(5, 3)
    assert pixels is not None
    with pytest.raises(ValueError, match="not within 5x3"):
        pixels.offset(*box)
    assert pixels.offset(4, 2, 1, 1) == pixels.address + (2 * 5 + 4) * 4
    assert pixels.offset(0, 0, 5, 3) == pixels.address


def test_pixels_must_match_their_size() -> None:
    with pytest.raises(ValueError, match="do not hold"):
        Pixels(bytearray(10), 2, 2)


def test_without_the_mapping_a_plain_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Pillow that refuses ``map_buffer`` for RGB, or lays it out otherwise (here: as
    ``L``, one byte a pixel), gets a plain image and no memory to convert into."""
    core = Image.core

    def refuse(*args: Any) -> Any:
        raise ValueError("unknown raw mode")

    monkeypatch.setattr(core, "map_buffer", refuse)
    image, pixels = mapped_rgb(4, 2)
    assert pixels is None and image.mode == "RGB" and image.size == (4, 2)
    monkeypatch.undo()
    original = core.map_buffer
    monkeypatch.setattr(core, "map_buffer",
                        lambda data, size, *rest: original(data, size, "raw", 0, ("L", 0, 1)))
    image, pixels = mapped_rgb(4, 2)
    assert pixels is None and image.mode == "RGB"


def units_for(w: int, h: int, count: int) -> tuple[list[np.ndarray], list[tuple[bytes, bool]]]:
    frames, units = stream(w, h, count)
    assert units[0][1] and not any(key for _, key in units[1:])
    return frames, units


def reference(units: list[tuple[bytes, bool]]) -> np.ndarray:
    """The last picture as PyAV decodes and converts it itself (swscale)."""
    decoder = av.CodecContext.create("h264", "r")
    for unit, _ in units:
        last = decoder.decode(av.Packet(unit))[-1]
    return rgb(last.to_image())


def paint_all(fb: Framebuffer, units: list[tuple[bytes, bool]], x: int, y: int, w: int,
              h: int) -> None:
    for i, (unit, key) in enumerate(units):
        rect = Rect(x, y, w, h, Encoding.H264, pack_header(0, key) + unit)
        fb.apply(Update(i, 0, (rect,), exact=False))


@needs_libyuv
@pytest.mark.parametrize(("screen", "box"), [
    ((200, 120), (17, 9, 162, 98)),      # an odd offset, a size no multiple of 16
    ((201, 111), (39, 13, 162, 98)),     # an odd screen width (stride) and height; the corner
    ((162, 98), (0, 0, 162, 98)),        # the whole screen
    ((301, 150), (301 - 96, 150 - 64, 96, 64)),  # the bottom-right edge
])
def test_units_are_converted_straight_into_the_framebuffer(
        screen: tuple[int, int], box: tuple[int, int, int, int]) -> None:
    x, y, w, h = box
    frames, units = units_for(w, h, 5)
    fb = Framebuffer(*screen, video=True)
    assert fb.video is not None and fb._pixels is not None
    # Grey around the rectangle: none of it may change.
    fb.image.paste((90, 90, 90), (0, 0, *screen))
    paint_all(fb, units, x, y, w, h)
    assert fb.video.decoded == len(units)
    assert len(fb.video._rgba) == 0  # no intermediate picture was made
    shown = np.asarray(fb.image).astype(np.int16)
    diff = np.abs(shown[y : y + h, x : x + w] - reference(units))
    assert diff.max() <= 4 and diff.mean() < 1.5  # libyuv against swscale: rounding only
    outside = np.ones(shown.shape[:2], bool)
    outside[y : y + h, x : x + w] = False
    assert (shown[outside] == 90).all()
    mse = np.mean((shown[y : y + h, x : x + w] - frames[-1].astype(np.int16)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 25


@needs_libyuv
def test_a_unit_for_a_smaller_rect_writes_nothing() -> None:
    """A key unit whose SPS declares 160x96, sent in a 160x64 rect (or one larger than its
    rect in any way), is refused before it is decoded: nothing of the screen changes."""
    _, units = units_for(160, 96, 2)
    fb = Framebuffer(200, 100, video=True)
    assert fb.video is not None
    before = bytes(fb._pixels.buffer) if fb._pixels is not None else b""
    paint_all(fb, units, 0, 0, 160, 64)
    assert fb.video.decoded == 0
    assert fb.video.refused == {"key unit refused": 1, "no key unit yet": 1}
    assert fb._pixels is not None and bytes(fb._pixels.buffer) == before


@needs_libyuv
def test_a_rect_past_the_screen_is_refused_unwritten() -> None:
    _, units = units_for(160, 96, 1)
    fb = Framebuffer(200, 100, video=True)
    assert fb._pixels is not None
    rect = Rect(60, 8, 160, 96, Encoding.H264, pack_header(0, True) + units[0][0])
    with pytest.raises(RemoteProtocolError, match="outside the framebuffer"):
        fb.apply(Update(0, 0, (rect,), exact=False))
    assert not any(fb._pixels.buffer)


@needs_libyuv
def test_paint_itself_refuses_a_rect_past_its_memory() -> None:
    """Below the framebuffer's own check: memory too small for the rect raises before
    libyuv writes a byte (the picture itself is the rect's size)."""
    _, units = units_for(96, 64, 1)
    image, pixels = mapped_rgb(100, 60)
    assert pixels is not None
    decoders = VideoDecoders()
    rect = Rect(0, 0, 96, 64, Encoding.H264, pack_header(0, True) + units[0][0])
    with pytest.raises(ValueError, match="not within 100x60"):
        decoders.paint(rect, image, pixels)
    assert not any(pixels.buffer)


@pytest.mark.parametrize("case", ["no libyuv", "use_libyuv=False", "no mapped memory"])
def test_the_other_paths_paint_the_same(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libyuv the picture goes through swscale and is pasted (exactly PyAV's own);
    without mapped memory libyuv converts into a picture of its own, pasted (within
    rounding)."""
    if case == "no libyuv":
        monkeypatch.setattr(yuv, "function", lambda name: None)
    if case == "no mapped memory":
        if yuv.function("I420ToABGR") is None:
            pytest.skip("libyuv is not installed")
        monkeypatch.setattr(pixels_module, "_laid_out", lambda image, buffer: False)
    x, y, w, h = 17, 9, 162, 98
    _, units = units_for(w, h, 4)
    fb = Framebuffer(201, 111, video=True)
    if case == "use_libyuv=False":
        fb.video = VideoDecoders(use_libyuv=False)
    assert fb.video is not None
    assert (fb._pixels is None) == (case == "no mapped memory")
    paint_all(fb, units, x, y, w, h)
    shown = np.asarray(fb.image).astype(np.int16)
    diff = np.abs(shown[y : y + h, x : x + w] - reference(units))
    assert diff.max() <= (4 if case == "no mapped memory" else 0)
    assert not shown[:y].any() and not shown[:, :x].any()
    assert not shown[y + h :].any() and not shown[:, x + w :].any()


def test_a_resize_leaves_the_old_image_whole() -> None:
    """A face may hold the image across a resize: it keeps the old size and pixels, while
    the framebuffer's new memory starts black."""
    fb = Framebuffer(8, 4)
    fb.image.paste((1, 2, 3), (0, 0, 8, 4))
    old = fb.image
    fb.resize(6, 6)
    assert old.size == (8, 4) and old.getpixel((7, 3)) == (1, 2, 3)
    assert fb.image.size == (6, 6) and not any(fb.image.tobytes())
    assert fb._pixels is not None and fb._pixels.width == 6
