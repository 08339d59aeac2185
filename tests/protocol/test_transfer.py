"""rdesk/protocol/transfer.py and chunks.py: the name rule, the binary chunk frame and the
codec limits of xfer_* messages, credit, the pacer."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import struct

import pytest

from rdesk.protocol import codec
from rdesk.protocol.chunks import CHUNK_HEADER, MAX_CHUNK_MESSAGE
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from rdesk.protocol.limits import MAX_VIEWER_MESSAGE
from rdesk.protocol.transfer import (
    CHUNK,
    CREDIT_BATCH,
    MIN_CHUNK,
    QUEUE_TARGET,
    WINDOW,
    Pacer,
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


# --- the pacer: a transfer queues about one frame ahead of input, whatever the link ---------------


def _simulate(rate: float, one_way: float) -> tuple[float, float, float, int]:
    """A sender with credit and a Pacer (which picks the chunk sizes) over a link of ``rate``
    bytes/s and ``one_way`` delay; the receiver stores at once. Returns (throughput, worst
    queueing delay after the first quarter, the budget at the end, the largest chunk sent
    after the first quarter)."""
    seconds = min(20.0, 20_000 * CHUNK / rate)  # about 20000 chunks at most
    pacer = Pacer()
    sender, receiver = Sending(1, 1 << 40), Receiving(1, 1 << 40)
    events: list[tuple[float, int, str, object]] = []
    order = itertools.count()
    now, link_free, worst, delivered, largest = 0.0, 0.0, 0.0, 0, 0
    grant = receiver.initial_credit()
    assert grant is not None
    sender.on_credit(grant)
    while now < seconds:
        while sender.credit and pacer.allows(step := pacer.chunk_size()):
            message = sender.chunk(b"x" * step)
            pacer.on_sent(step, now)
            start = max(now, link_free)  # the bottleneck's queue
            if now > seconds / 4:
                worst = max(worst, start - now)
                largest = max(largest, step)
            link_free = start + step / rate
            heapq.heappush(events, (link_free + one_way, next(order), "data", message))
        now, _, kind, arrived = heapq.heappop(events)
        if kind == "data":
            assert isinstance(arrived, XferData)
            delivered += len(receiver.on_data(arrived))
            back = receiver.stored()
            if back is not None:
                heapq.heappush(events, (now + one_way, next(order), "credit", back))
        else:
            assert isinstance(arrived, XferCredit)
            sender.on_credit(arrived)
            pacer.on_credit(arrived.chunks, now)
    return delivered / now, worst, pacer.budget, largest


@pytest.mark.parametrize(("rate", "one_way"), [(10e6 / 8, 0.010), (2e6 / 8, 0.040),
                                               (100e6 / 8, 0.002), (1e9 / 8, 0.0002),
                                               (100e6 / 8, 0.025)])
def test_the_pacer_keeps_the_queue_under_one_frame_and_the_link_busy(rate: float,
                                                                     one_way: float) -> None:
    throughput, worst, budget, largest = _simulate(rate, one_way)
    window_limit = WINDOW * largest / (2 * one_way + largest / rate)  # credit's own ceiling
    assert throughput >= 0.9 * min(rate, window_limit)
    # Queueing ahead of a key: the target, plus two chunks' serialization (batching, and the
    # floor of two chunks in flight): under one 60 Hz frame from 10 Mbit/s up (below, one
    # smallest chunk alone takes 16 ms at 2 Mbit/s).
    assert worst <= QUEUE_TARGET + 2 * largest / rate + 1e-9, worst
    if rate >= 10e6 / 8:
        assert worst < 1 / 60, worst
    assert budget >= 2 * MIN_CHUNK


@pytest.mark.parametrize(("rate", "one_way", "low", "high"), [
    (2e6 / 8, 0.040, MIN_CHUNK, MIN_CHUNK),   # a slow link: the smallest chunks
    (10e6 / 8, 0.010, MIN_CHUNK, 8 * 1024),
    (1e9 / 8, 0.0002, 64 * 1024, CHUNK),     # loopback-like: large chunks, few messages
])
def test_the_pacer_picks_small_chunks_on_slow_links_and_large_ones_on_fast(
        rate: float, one_way: float, low: int, high: int) -> None:
    _, _, _, largest = _simulate(rate, one_way)
    assert low <= largest <= high, largest


def test_without_the_pacer_a_window_queues_far_longer_on_a_slow_link() -> None:
    # What the pacer is for: credit alone lets a whole window queue (16 chunks of 16 KiB: 256 KiB,
    # 210 ms at 10 Mbit/s).
    assert WINDOW * 16 * 1024 / (10e6 / 8) > 8 * QUEUE_TARGET


def test_the_pacer_starts_slowly_until_it_has_measured() -> None:
    pacer = Pacer()
    pacer.on_credit(WINDOW, 0.0)  # the first grant confirms nothing
    assert pacer.chunk_size() == MIN_CHUNK and pacer.budget == 4 * MIN_CHUNK
    for _ in range(4):
        assert pacer.allows(MIN_CHUNK)
        pacer.on_sent(MIN_CHUNK, 1.0)
    assert not pacer.allows(MIN_CHUNK)
    pacer.on_credit(2, 1.1)
    assert pacer.min_rtt == pytest.approx(0.1) and pacer.rate is None  # one sample: no rate
    pacer.on_credit(2, 1.2)
    rate = 2 * MIN_CHUNK / 0.1
    assert pacer.rate == pytest.approx(rate)
    # The round trip's bytes, the target's, and the credit a receiver holds back (one chunk).
    held_back = (CREDIT_BATCH - 1) * MIN_CHUNK
    assert pacer.budget == pytest.approx(rate * (0.1 + QUEUE_TARGET) + held_back)
    assert pacer.chunk_size() == MIN_CHUNK  # a slow link: the smallest chunks


def test_credits_read_in_a_burst_do_not_inflate_the_rate() -> None:
    # The sender's loop was busy: 1 MB/s of credit, read 2 credits at a time 10 µs apart
    # every 32 ms. Rated credit by credit that is 1.6 GB/s, and a budget (chunks in flight
    # ahead of a key) 1600 times too large; over a window (RATE_WINDOW, or a round trip) it
    # stays the rate it is.
    pacer = Pacer()
    now = 0.0
    for _ in range(400):
        for _ in range(4):
            pacer.on_sent(8192, now)
        for _ in range(2):
            pacer.on_credit(2, now)
            now += 1e-5
        now += 4 * 8192 / 1e6 - 2e-5
    assert pacer.rate is not None and 0.8e6 < pacer.rate < 1.25e6, pacer.rate


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
