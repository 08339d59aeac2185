"""The splice's frame reader (``rdesk/relay/frames.py``): pure logic, frames made by the
websockets library as a client makes them (masked)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from rdesk.relay import frames
from rdesk.relay.frames import FrameError, FrameReader

LIMIT = 1000


def client(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    """A frame as a websocket client writes it: masked."""
    return WsFrame(opcode, payload, fin).serialize(mask=True, extensions=[])


def raw(first: int, payload: bytes) -> bytes:
    """A masked frame with any first byte (websockets will not make a malformed one)."""
    mask = b"\x01\x02\x03\x04"
    length = len(payload)
    size = bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + length.to_bytes(2)
    return bytes([first]) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def refusal(data: bytes, limit: int = LIMIT) -> tuple[int, str]:
    with pytest.raises(FrameError) as caught:
        FrameReader("viewer", limit).feed(data)
    return caught.value.code, caught.value.reason


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=300), st.integers(1, 3)), max_size=8),
       st.data())
def test_any_fragmentation_and_any_chunking_give_the_payloads_back(
    messages: list[tuple[bytes, int]], data: st.DataObject,
) -> None:
    wire, expected = b"", []
    for payload, parts in messages:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), min_size=parts - 1,
                                         max_size=parts - 1)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for index, piece in enumerate(pieces):
            opcode = Opcode.BINARY if index == 0 else Opcode.CONT
            wire += client(opcode, piece, fin=index == len(pieces) - 1)
            expected.append((int(opcode), index == len(pieces) - 1, piece))
        if data.draw(st.booleans()):  # a ping between messages
            wire += client(Opcode.PING, b"p")
            expected.append((frames.PING, True, b"p"))
    reader, got, at = FrameReader("viewer", LIMIT), [], 0
    while at < len(wire):
        step = data.draw(st.integers(1, 64))
        got += [(f.opcode, f.fin, f.payload) for f in reader.feed(wire[at:at + step])]
        at += step
    assert got == expected
    assert reader.buffered == 0


def test_what_it_forwards_is_the_same_frame_unmasked() -> None:
    frame = FrameReader("host", LIMIT).feed(client(Opcode.BINARY, b"x" * 200))[0]
    assert frames.encode(frame.opcode, frame.payload, frame.fin) == WsFrame(
        Opcode.BINARY, b"x" * 200).serialize(mask=False, extensions=[])
    big = b"y" * 70_000
    assert frames.encode(frames.BINARY, big) == WsFrame(Opcode.BINARY, big).serialize(
        mask=False, extensions=[])


def test_text_is_refused_binary_only() -> None:
    assert refusal(client(Opcode.TEXT, b"hi")) == (
        1003, "viewer sent text: the splice is binary only")


def test_an_oversized_message_is_refused_on_its_header_before_its_payload() -> None:
    header = client(Opcode.BINARY, b"z" * (LIMIT + 1))[:8]  # 2 + 2 length + 4 mask
    assert refusal(header) == (1009, "viewer sent a message over the splice limit")
    # the limit is on the message: fragments add up
    two = client(Opcode.BINARY, b"a" * 600, fin=False) + client(Opcode.CONT, b"b" * 401)
    assert refusal(two)[0] == 1009
    reader = FrameReader("viewer", LIMIT)
    assert len(reader.feed(client(Opcode.BINARY, b"a" * 600, fin=False)
                           + client(Opcode.CONT, b"b" * 400))) == 2
    assert len(reader.feed(client(Opcode.BINARY, b"c" * LIMIT))) == 1  # a new message


@pytest.mark.parametrize(("data", "reason"), [
    (WsFrame(Opcode.BINARY, b"x").serialize(mask=False, extensions=[]),
     "viewer sent an unmasked frame"),
    (bytes([0xC2]) + client(Opcode.BINARY, b"x")[1:],
     "viewer sent a frame with a reserved bit set"),
    (bytes([0x83]) + client(Opcode.BINARY, b"x")[1:],
     "viewer sent a frame of unknown opcode 3"),
    (client(Opcode.CONT, b"x"), "viewer sent a fragment out of sequence"),
    (client(Opcode.BINARY, b"x", fin=False) + client(Opcode.BINARY, b"y"),
     "viewer sent a fragment out of sequence"),
    (raw(0x89, b"p" * 126), "viewer sent a long or fragmented control frame"),
    (raw(0x09, b"p"), "viewer sent a long or fragmented control frame"),
])
def test_malformed_frames_are_protocol_errors(data: bytes, reason: str) -> None:
    assert refusal(data) == (1002, reason)


def test_close_payloads() -> None:
    assert frames.parse_close("host", b"") == (None, "")
    assert frames.parse_close("host", b"\x0f\xa1bad password") == (4001, "bad password")
    for payload, code in ((b"\x03", 1002), (b"\x03\xed", 1002), (b"\x03\xe8\xff", 1007)):
        with pytest.raises(FrameError) as caught:
            frames.parse_close("host", payload)
        assert caught.value.code == code
    sent = frames.close_frame(1001, "é" * 100)  # cut to 123 bytes, on a character boundary
    assert len(sent) <= 2 + 125 and sent[4:].decode() == "é" * 61
