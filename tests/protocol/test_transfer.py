"""rdesk/protocol/transfer.py: the name rule, the codec limits of xfer_* messages, credit."""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import json

import pytest

from rdesk.protocol import codec
from rdesk.protocol.errors import LocalProtocolError, RemoteProtocolError
from rdesk.protocol.fields import Str
from rdesk.protocol.limits import MAX_CONTROL_MESSAGE
from rdesk.protocol.transfer import (
    _DATA,
    CHUNK,
    CREDIT_BATCH,
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

def test_a_full_chunk_fits_a_control_message() -> None:
    flow = Sending(0xFFFFFFFF, CHUNK)
    flow.credit = 1
    frame = codec.encode(flow.chunk(b"\xff" * CHUNK))
    assert isinstance(frame, str) and len(frame.encode()) <= MAX_CONTROL_MESSAGE
    assert codec.decode(frame) == XferData(0xFFFFFFFF, base64.b64encode(b"\xff" * CHUNK).decode())


def test_oversized_data_is_refused_by_the_codec() -> None:
    data = base64.b64encode(b"x" * (CHUNK + 3)).decode()
    with pytest.raises(RemoteProtocolError, match=r"xfer_data\.data"):
        codec.decode(f'{{"t":"xfer_data","id":1,"data":"{data}"}}')


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


def _simulate(rate: float, one_way: float) -> tuple[float, float, float]:
    """A sender with credit and a Pacer over a link of ``rate`` bytes/s and ``one_way`` delay;
    the receiver stores at once. Returns (throughput, worst queueing delay after the first
    quarter, the budget at the end)."""
    seconds = min(20.0, 20_000 * CHUNK / rate)  # about 20000 chunks at most
    pacer = Pacer()
    sender, receiver = Sending(1, 1 << 40), Receiving(1, 1 << 40)
    events: list[tuple[float, int, str, object]] = []
    order = itertools.count()
    now, link_free, worst, delivered = 0.0, 0.0, 0.0, 0
    grant = receiver.initial_credit()
    assert grant is not None
    sender.on_credit(grant)
    while now < seconds:
        while sender.credit and pacer.allows(CHUNK):
            message = sender.chunk(b"x" * CHUNK)
            pacer.on_sent(CHUNK, now)
            start = max(now, link_free)  # the bottleneck's queue
            if now > seconds / 4:
                worst = max(worst, start - now)
            link_free = start + CHUNK / rate
            heapq.heappush(events, (link_free + one_way, next(order), "data", message))
        now, _, kind, arrived = heapq.heappop(events)
        if kind == "data":
            assert isinstance(arrived, XferData)
            receiver.on_data(arrived)
            delivered += CHUNK
            back = receiver.stored()
            if back is not None:
                heapq.heappush(events, (now + one_way, next(order), "credit", back))
        else:
            assert isinstance(arrived, XferCredit)
            sender.on_credit(arrived)
            pacer.on_credit(arrived.chunks, now)
    return delivered / now, worst, pacer.budget


@pytest.mark.parametrize(("rate", "one_way"), [(10e6 / 8, 0.010), (2e6 / 8, 0.040),
                                               (100e6 / 8, 0.002), (1e9 / 8, 0.0002)])
def test_the_pacer_keeps_the_queue_near_one_frame_and_the_link_busy(rate: float,
                                                                     one_way: float) -> None:
    throughput, worst, budget = _simulate(rate, one_way)
    window_limit = WINDOW * CHUNK / (2 * one_way + CHUNK / rate)  # credit's own ceiling
    assert throughput >= 0.9 * min(rate, window_limit)
    # Queueing ahead of a key: one frame, plus two chunks' serialization (batching, and the
    # floor of two chunks in flight).
    assert worst <= QUEUE_TARGET + 2 * CHUNK / rate + 1e-9, worst
    assert budget >= 2 * CHUNK


def test_without_the_pacer_a_window_queues_far_longer_on_a_slow_link() -> None:
    # What the pacer is for: credit alone lets a whole window (176 KiB) queue, 144 ms at 10 Mbit/s.
    assert WINDOW * CHUNK / (10e6 / 8) > 8 * QUEUE_TARGET


def test_the_pacer_lets_everything_through_until_it_has_measured() -> None:
    pacer = Pacer()
    pacer.on_credit(WINDOW, 0.0)  # the first grant confirms nothing
    assert pacer.budget == float("inf") and pacer.allows(10 * WINDOW * CHUNK)
    pacer.on_sent(CHUNK, 1.0)
    pacer.on_sent(CHUNK, 1.0)
    pacer.on_credit(2, 1.1)
    assert pacer.min_rtt == pytest.approx(0.1) and pacer.rate is None  # one sample: no rate
    pacer.on_sent(CHUNK, 1.1)
    pacer.on_sent(CHUNK, 1.1)
    pacer.on_credit(2, 1.2)
    assert pacer.rate == pytest.approx(2 * CHUNK / 0.1)
    assert pacer.budget == pytest.approx(max(2 * CHUNK, 2 * CHUNK / 0.1 * (0.1 + QUEUE_TARGET)))


def test_data_without_credit_is_a_protocol_error() -> None:
    receiver = Receiving(1, 10 * CHUNK * WINDOW)
    credit = receiver.initial_credit()
    assert credit is not None and credit.chunks == WINDOW
    chunk = XferData(1, base64.b64encode(b"x" * CHUNK).decode())
    for _ in range(WINDOW):
        receiver.on_data(chunk)  # received, not yet stored: no credit returned
    with pytest.raises(RemoteProtocolError, match="without credit"):
        receiver.on_data(chunk)


def test_more_bytes_than_announced_is_a_protocol_error() -> None:
    receiver = Receiving(1, 5)
    receiver.initial_credit()
    with pytest.raises(RemoteProtocolError, match="more than its 5 bytes"):
        receiver.on_data(XferData(1, base64.b64encode(b"123456").decode()))


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


def test_bad_base64_and_a_wrong_hash_are_caught() -> None:
    receiver = Receiving(1, 3)
    receiver.initial_credit()
    with pytest.raises(RemoteProtocolError, match="not base64"):
        receiver.on_data(XferData(1, "@@@@"))
    receiver.on_data(XferData(1, base64.b64encode(b"abc").decode()))
    assert "differs" in (receiver.on_end(XferEnd(1, "0" * 64)) or "")
    with pytest.raises(RemoteProtocolError, match="no SHA-256"):
        receiver.on_end(XferEnd(1, "not hex"))
    short = Receiving(2, 4)
    assert "received 0 of 4" in (short.on_end(XferEnd(2, hashlib.sha256().hexdigest())) or "")


def test_data_that_is_not_base64_passes_the_codec_but_never_the_decoder() -> None:
    # The codec checks xfer_data as any string field (no control characters); the decoder
    # checks the alphabet and the padding.
    for text in ("abc!", "abcde", "ab=c", "abc\u00e9"):
        message = codec.decode(json.dumps({"t": "xfer_data", "id": 1, "data": text}))
        assert isinstance(message, XferData)
        receiver = Receiving(1, 10)
        receiver.initial_credit()
        with pytest.raises(RemoteProtocolError, match="not base64"):
            receiver.on_data(message)


@pytest.mark.parametrize("bad", ["ab\x00d", "abc\x7f", "ab\nd", "\ud800abc"])
def test_the_fast_data_field_refuses_what_str_refuses(bad: str) -> None:
    assert _DATA.check(bad) is not None and Str(_DATA.max_len, 4).check(bad) is not None
    for good in ("YWJj", "abc\u00e9", "x" * 4):
        assert _DATA.check(good) is None and Str(_DATA.max_len, 4).check(good) is None
