"""rdesk/protocol/transfer.py and chunks.py: the name rule, the binary chunk frame and the
codec limits of xfer_* messages, credit (the pacer: test_pacer.py)."""

from __future__ import annotations

import hashlib
import struct

import pytest

from rdesk.protocol import codec
from rdesk.protocol.chunks import CHUNK_HEADER, MAX_CHUNK_MESSAGE
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from rdesk.protocol.limits import MAX_VIEWER_MESSAGE
from rdesk.protocol.transfer import (
    CHUNK,
    CREDIT_BATCH,
    WINDOW,
    Receiving,
    Sending,
    XferCredit,
    XferData,
    XferDone,
    XferEnd,
    XferPut,
    check_name,
)

# --- names: a name, never a path ----------------------------------------------------------------

HOSTILE = {
    "../../.bashrc": "a name, not a path",
    "/etc/passwd": "a name, not a path",
    "..\\x": "a name, not a path",
    "C:\\x": "a name, not a path",
    "C:x": "a name, not a path",
    "..": "starts with a dot",
    ".": "starts with a dot",
    ".bashrc": "starts with a dot",
    "NUL": "reserved device name",
    "CON": "reserved device name",
    "con.txt": "reserved device name",
    "LPT1.log": "reserved device name",
    "COM0": "reserved device name",
    "lpt0.txt": "reserved device name",
    "a\x00b": "control character U+0000",
    "a\nb": "control character U+000A",
    "a\x1bb": "control character U+001B",
    "invoice\u202etxt.exe": "U+202E",  # RIGHT-TO-LEFT OVERRIDE: shows as "invoiceexe.txt"
    "a\u200bb": "U+200B",  # zero width space
    "x" * 256: "longer than 255 bytes",
    "é" * 128: "longer than 255 bytes",  # 128 characters, 256 bytes of UTF-8
    "": "empty",
    "name.": "ends with a dot",
    "name ": "space",
    "a*b": "a name, not a path",
    "e\u0301.txt": "normal form C",
}


@pytest.mark.parametrize("name", list(HOSTILE), ids=repr)
def test_hostile_names_are_refused_with_the_reason(name: str) -> None:
    reason = check_name(name)
    assert reason is not None and HOSTILE[name] in reason


@pytest.mark.parametrize("name", ["report.pdf", "Makefile", "photo 2026-12-01.jpg",
                                  "résumé.txt", "数据.csv", "x" * 255, "con-notes.txt",
                                  "a..b", "null.txt"])
def test_plain_names_pass(name: str) -> None:
    assert check_name(name) is None


def test_a_name_with_control_characters_does_not_even_decode() -> None:
    # The codec's Str refuses control characters on the wire already: a clean close.
    frame = '{"t":"xfer_put","id":1,"name":"a\\u0000b","size":1}'
    with pytest.raises(RemoteProtocolError, match="control characters"):
        codec.decode(frame)


# --- sizes on the wire ----------------------------------------------------------------------------

def _frame(kind: int = 2, reserved: int = 0, reserved16: int = 0, transfer_id: int = 1,
           offset: int = 0, length: int | None = None, payload: bytes = b"abc") -> bytes:
    length = len(payload) if length is None else length
    return struct.pack("!BBHIQI", kind, reserved, reserved16, transfer_id, offset,
                       length) + payload


def test_a_full_chunk_is_one_binary_frame_of_raw_bytes() -> None:
    flow = Sending(0xFFFFFFFF, CHUNK + 5)
    flow.credit = 2
    frame = codec.encode(flow.chunk(b"\xff" * CHUNK))
    assert isinstance(frame, bytes) and len(frame) == CHUNK_HEADER.size + CHUNK
    assert frame[0] == 2 and frame.endswith(b"\xff" * CHUNK)  # kind 2, no base64
    assert codec.decode(frame) == XferData(0xFFFFFFFF, 0, b"\xff" * CHUNK)
    second = codec.encode(flow.chunk(b"tail!"))
    assert codec.decode(second) == XferData(0xFFFFFFFF, CHUNK, b"tail!")  # its offset
    assert len(frame) == MAX_CHUNK_MESSAGE <= MAX_VIEWER_MESSAGE


@pytest.mark.parametrize(("frame", "reason"), [
    (_frame(reserved=1), "reserved"),
    (_frame(reserved16=1), "reserved"),
    (_frame(length=4), "length"),  # says 4, carries 3
    (_frame(length=2), "length"),
    (_frame(payload=b""), "length"),  # an empty chunk
    (_frame(offset=(1 << 40) + 1), "offset"),
    (_frame()[:19], "shorter than its header"),
    (_frame(payload=b"x" * (CHUNK + 1)), "exceeds"),
])
def test_a_bad_chunk_frame_is_refused_with_the_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        codec.decode(frame)
    if reason == "exceeds":
        assert info.value.code is CloseCode.TOO_BIG


def test_an_unknown_binary_kind_and_json_xfer_data_are_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown binary message kind"):
        codec.decode(_frame(kind=3))
    # The base64 form of version 1's first draft is gone: a text xfer_data is unknown.
    with pytest.raises(RemoteProtocolError, match="unknown message type 'xfer_data'"):
        codec.decode('{"t":"xfer_data","id":1,"data":"YWJj"}')


def test_the_codec_refuses_to_send_a_bad_chunk() -> None:
    for bad in (XferData(1, 0, b""), XferData(1, 0, b"x" * (CHUNK + 1)), XferData(-1, 0, b"x"),
                XferData(1, -1, b"x"), XferData(1, 0, "text")):  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError):
            codec.encode(bad)


def test_sizes_and_credit_are_bounded() -> None:
    with pytest.raises(RemoteProtocolError):
        codec.decode('{"t":"xfer_put","id":1,"name":"a","size":1099511627777}')
    with pytest.raises(RemoteProtocolError):
        codec.decode(f'{{"t":"xfer_credit","id":1,"chunks":{WINDOW + 1}}}')
    with pytest.raises(LocalProtocolError):
        codec.encode(XferPut(1, "a", -1))
    assert codec.decode(codec.encode(XferDone(1, True, "a", 3, "0" * 64, ""))) == XferDone(
        1, True, "a", 3, "0" * 64, "")


# --- flow control -----------------------------------------------------------------------------


def _transfer(size: int, chunk: int = CHUNK) -> tuple[bytes, list[str]]:
    """Run one transfer through Sending and Receiving; the bytes and the message log."""
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    sender, receiver = Sending(7, size), Receiving(7, size)
    log: list[str] = []
    credit = receiver.initial_credit()
    if credit is not None:
        sender.on_credit(credit)
    got = bytearray()
    while sender.remaining:
        assert sender.credit > 0, "the receiver left the sender without credit"
        assert sender.credit <= WINDOW
        message = sender.chunk(payload[sender.sent:sender.sent + chunk])
        log.append("data")
        got += receiver.on_data(message)
        back = receiver.stored()
        if back is not None:
            log.append(f"credit {back.chunks}")
            sender.on_credit(back)
    assert receiver.on_end(sender.end()) is None
    assert receiver.sha256 == hashlib.sha256(payload).hexdigest()
    return bytes(got), log


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, WINDOW * CHUNK,
                                  WINDOW * CHUNK * 5 + 17])
def test_a_transfer_goes_through_with_its_hash(size: int) -> None:
    got, log = _transfer(size)
    assert len(got) == size
    assert log.count("data") == -(-size // CHUNK)


def test_small_chunks_never_deadlock() -> None:
    # A sender may use smaller chunks than CHUNK: the receiver's count of what is left is then
    # too low, and it must still keep credit coming.
    got, log = _transfer(CHUNK * 3, chunk=1000)
    assert len(got) == CHUNK * 3 and log.count("data") == -(-CHUNK * 3 // 1000)


def test_credit_comes_back_in_batches() -> None:
    _, log = _transfer(WINDOW * CHUNK * 4)
    credits = [entry for entry in log if entry.startswith("credit")]
    assert credits and all(entry == f"credit {CREDIT_BATCH}" for entry in credits)


def test_data_without_credit_is_a_protocol_error() -> None:
    receiver = Receiving(1, 10 * CHUNK * WINDOW)
    credit = receiver.initial_credit()
    assert credit is not None and credit.chunks == WINDOW
    for n in range(WINDOW):
        receiver.on_data(XferData(1, n * CHUNK, b"x" * CHUNK))  # received, not yet stored
    with pytest.raises(RemoteProtocolError, match="without credit"):
        receiver.on_data(XferData(1, WINDOW * CHUNK, b"x" * CHUNK))


@pytest.mark.parametrize("offset", [0, 1, 3, 1 << 20])
def test_a_chunk_out_of_order_is_a_protocol_error(offset: int) -> None:
    receiver = Receiving(1, 100)
    receiver.initial_credit()
    receiver.on_data(XferData(1, 0, b"ab"))
    with pytest.raises(RemoteProtocolError, match=f"offset {offset}, expected 2"):
        receiver.on_data(XferData(1, offset, b"cd"))  # a repeat, an overlap, a gap, a jump
    assert receiver.received == 2


def test_more_bytes_than_announced_is_a_protocol_error() -> None:
    receiver = Receiving(1, 5)
    receiver.initial_credit()
    with pytest.raises(RemoteProtocolError, match="more than its 5 bytes"):
        receiver.on_data(XferData(1, 0, b"123456"))


def test_credit_beyond_the_window_is_a_protocol_error() -> None:
    sender = Sending(1, 100 * CHUNK)
    sender.on_credit(XferCredit(1, WINDOW))
    with pytest.raises(RemoteProtocolError, match="exceeds the window"):
        sender.on_credit(XferCredit(1, 1))


def test_sender_cannot_send_without_credit_or_past_the_size() -> None:
    sender = Sending(1, 3)
    with pytest.raises(LocalProtocolError, match="no credit"):
        sender.chunk(b"abc")
    sender.on_credit(XferCredit(1, 2))
    with pytest.raises(LocalProtocolError, match="past the announced size"):
        sender.chunk(b"abcd")
    with pytest.raises(LocalProtocolError, match="sent 0 of 3"):
        sender.end()


def test_a_wrong_hash_or_a_short_file_is_caught() -> None:
    receiver = Receiving(1, 3)
    receiver.initial_credit()
    receiver.on_data(XferData(1, 0, b"abc"))
    assert "differs" in (receiver.on_end(XferEnd(1, "0" * 64)) or "")
    with pytest.raises(RemoteProtocolError, match="no SHA-256"):
        receiver.on_end(XferEnd(1, "not hex"))
    short = Receiving(2, 4)
    assert "received 0 of 4" in (short.on_end(XferEnd(2, hashlib.sha256().hexdigest())) or "")
