"""The cursor's pure parts: the viewer's assembler and cache, the host's memory, the pixels."""

from __future__ import annotations

import pytest

from rdesk.host.screen.cursor import argb_to_rgba
from rdesk.protocol import codec
from rdesk.protocol.cursor import (
    CACHE_SIZE,
    CursorAssembler,
    CursorShape,
    CursorUse,
    SentCursors,
    cursor_messages,
)
from rdesk.protocol.errors import RemoteProtocolError


def _show(assembler: CursorAssembler, serial: int, png: bytes) -> object:
    shown = None
    for message in cursor_messages(CursorShape(serial, 32, 32, 1, 2, len(png)), png):
        assert shown is None
        shown = assembler.receive(codec.decode(codec.encode(message)))  # type: ignore[arg-type]
    return shown


def test_shape_in_chunks_then_from_the_cache() -> None:
    assembler = CursorAssembler()
    png = bytes(range(256)) * 100  # 25 600 bytes: three chunks
    shown = _show(assembler, 7, png)
    assert shown == (CursorShape(7, 32, 32, 1, 2, len(png)), png)
    assert assembler.receive(CursorUse(7)) == shown


def test_hot_spot_outside_the_image_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="hot spot outside"):
        CursorAssembler().receive(CursorShape(1, 16, 16, 16, 0, 10))


def test_more_than_announced_is_refused() -> None:
    assembler = CursorAssembler()
    messages = list(cursor_messages(CursorShape(1, 8, 8, 0, 0, 3), b"abcdef"))
    assembler.receive(messages[0])
    with pytest.raises(RemoteProtocolError, match="more than announced"):
        assembler.receive(messages[1])


def test_use_of_a_serial_never_sent_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="never sent"):
        CursorAssembler().receive(CursorUse(99))


def test_host_and_viewer_forget_the_same_serials() -> None:
    assembler, sent = CursorAssembler(), SentCursors()
    for serial in range(CACHE_SIZE + 5):
        _show(assembler, serial, b"png")
        sent.sent(serial)
    for serial in range(CACHE_SIZE + 5):
        if sent.holds(serial):
            assert assembler.receive(CursorUse(serial)) is not None
        else:
            with pytest.raises(RemoteProtocolError):
                assembler.receive(CursorUse(serial))


def test_argb_unpremultiplied() -> None:
    words = [0xFF102030, 0x00000000, 0x80400000, 0x40202020]
    assert argb_to_rgba(words, 2, 2) == bytes(
        [0x10, 0x20, 0x30, 255, 0, 0, 0, 0, 0x80, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x40]
    )
