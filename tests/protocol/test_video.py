"""The video header and the video messages' codec rules."""

from __future__ import annotations

import pytest

from rdesk.protocol.codec import decode, encode
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import LocalProtocolError, RemoteProtocolError
from rdesk.protocol.updates import Rect, Update
from rdesk.protocol.video import (
    FLAG_KEY,
    MAX_VIDEO_STREAMS,
    VIDEO_HEADER,
    Keyframe,
    Video,
    VideoEnd,
    VideoHeader,
    codec_list,
    key_bytes,
    pack_header,
    unpack_header,
)


def test_header_round_trip() -> None:
    for stream in range(MAX_VIDEO_STREAMS):
        for key in (False, True):
            assert unpack_header(pack_header(stream, key) + b"au") == VideoHeader(stream, key)
    assert pack_header(3, True) == b"\x03\x01\x00\x00"
    with pytest.raises(ValueError):
        pack_header(MAX_VIDEO_STREAMS, False)


@pytest.mark.parametrize("payload", [
    b"", b"\0\0\0\0", VIDEO_HEADER.pack(8, 0, 0) + b"a", VIDEO_HEADER.pack(0, 2, 0) + b"a",
    VIDEO_HEADER.pack(0, FLAG_KEY | 0x80, 0) + b"a", VIDEO_HEADER.pack(0, 0, 1) + b"a",
])
def test_malformed_headers(payload: bytes) -> None:
    assert unpack_header(payload) is None


def test_video_rect_through_the_codec() -> None:
    rect = Rect(2, 4, 16, 32, Encoding.H264, pack_header(1, True) + b"\0\0\1\x67")
    update = Update(1, 2, (rect,))
    assert decode(encode(update)) == update
    with pytest.raises(LocalProtocolError):
        encode(Update(1, 2, (Rect(2, 4, 15, 32, Encoding.H264, rect.payload),)))
    with pytest.raises(RemoteProtocolError, match="video header"):
        frame = encode(update)
        assert isinstance(frame, bytes)
        decode(frame.replace(pack_header(1, True), b"\x09\x01\x00\x00"))


def test_messages_and_codec_lists() -> None:
    for message in (Video("h264"), Video(""), Keyframe(7), VideoEnd(0)):
        assert decode(encode(message)) == message
    assert encode(Video("h264")) == '{"t":"video","codecs":"h264"}'
    for bad in ('{"t":"keyframe","stream":8}', '{"t":"video_end","stream":-1}',
                '{"t":"video","codecs":"' + "h" * 65 + '"}'):
        with pytest.raises(RemoteProtocolError):
            decode(bad)
    assert codec_list(" vp9 , h264,,") == ["vp9", "h264"]
    assert codec_list("") == []


def test_key_bytes_are_the_key_units_payloads() -> None:
    """Only H264 rectangles flagged key count, whole payload each; P units, tiles and a
    malformed header count nothing."""
    key = Rect(0, 0, 16, 16, Encoding.H264, pack_header(0, True) + b"k" * 100)
    other_key = Rect(16, 0, 16, 16, Encoding.H264, pack_header(1, True) + b"k" * 50)
    p_unit = Rect(0, 16, 16, 16, Encoding.H264, pack_header(0, False) + b"p" * 70)
    tile = Rect(0, 32, 16, 16, Encoding.JPEG, pack_header(0, True) + b"j" * 30)
    malformed = Rect(0, 48, 16, 16, Encoding.H264, b"\x09\x01\x00\x00" + b"m" * 9)
    assert key_bytes(Update(1, 2, (key, p_unit, tile, malformed, other_key))) == 104 + 54
    assert key_bytes(Update(1, 2, (p_unit, tile))) == 0
