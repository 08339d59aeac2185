"""A small recorded session for the recording and playback tests (tests/host, tests/client)."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

from PIL import Image, ImageChops

from rdesk.client.framebuffer import Framebuffer
from rdesk.protocol.codec import decode, encode
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.inputs import Key
from rdesk.protocol.messages import Screen, Welcome
from rdesk.protocol.updates import Rect, Update
from rdesk.recording.format import Recorder


def _png(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _update(seq: int, x: int, color: tuple[int, int, int]) -> bytes:
    rect = Rect(x, 0, 16, 16, Encoding.PNG, _png(color, (16, 16)))
    frame = encode(Update(seq, seq * 1000, (rect,), exact=True))
    assert isinstance(frame, bytes)
    return frame


def record_session(
    directory: Path, *, record_input: bool = False
) -> tuple[Path, list[Image.Image]]:
    """A small recorded session (64x32: three coloured squares, one key each if
    ``record_input``, then a resize to 32x16) and the screen after each of its updates."""
    clock = itertools.count(0.0, 0.25)
    rec = Recorder(directory, "s1/../x", record_input=record_input, clock=lambda: next(clock))
    rec.sent(str(encode(Welcome("control", 1, 64, 32, "lab"))))
    expected: list[Image.Image] = []
    fb = Framebuffer(64, 32)
    expected.append(fb.image.copy())
    for seq, (x, color) in enumerate([(0, (255, 0, 0)), (16, (0, 255, 0)), (32, (0, 0, 255))]):
        frame = _update(seq + 1, x, color)
        rec.sent(frame)
        rec.received(str(encode(Key(0x61, True))))
        message = decode(frame)
        assert isinstance(message, Update)
        fb.apply(message)
        expected.append(fb.image.copy())
    rec.sent(str(encode(Screen(32, 16))))
    expected.append(Image.new("RGB", (32, 16)))
    rec.close("viewer left")
    return rec.path, expected


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    """Whether two images have the same size and pixels."""
    return a.size == b.size and ImageChops.difference(a, b).getbbox() is None
