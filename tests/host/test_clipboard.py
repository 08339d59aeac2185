"""The clipboard's pure parts: reassembly under a cap, the policy table."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest

from rdesk.host.clipboard.policy import may_read_host, may_write_host
from rdesk.protocol import codec
from rdesk.protocol.access import Access
from rdesk.protocol.clipboard import (
    CHUNK_BYTES,
    Assembler,
    ClipData,
    ClipOffer,
    chunks,
    refusal,
)
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.limits import MAX_CONTROL_MESSAGE


def _feed(assembler: Assembler, messages: Sequence[object]) -> object:
    first, *rest = messages
    assert isinstance(first, ClipOffer)
    assert assembler.offer(first) is None
    done = None
    for message in rest:
        assert done is None, "finished before its last chunk"
        assert isinstance(message, ClipData)
        done = assembler.data(message)
    return done


@pytest.mark.parametrize("text", ["", "a", "é" * CHUNK_BYTES, "🙂\n" * 9000, "x" * (1 << 20)])
def test_round_trip_through_the_codec(text: str) -> None:
    messages = [codec.decode(codec.encode(m)) for m in chunks(7, text)]  # type: ignore[arg-type]
    assert all(len(codec.encode(m).encode()) <= MAX_CONTROL_MESSAGE for m in messages)  # type: ignore[union-attr]
    done = _feed(Assembler(1 << 20), messages)
    assert done == (ClipOffer(7, "clipboard", len(text.encode())), text, None)


def test_a_chunk_may_split_a_character() -> None:
    text = "€" * CHUNK_BYTES  # 3 bytes each: chunk borders fall inside characters
    done = _feed(Assembler(1 << 20), list(chunks(1, text)))
    assert done is not None and done[1] == text  # type: ignore[index]


def test_oversize_offer_refused_before_any_chunk() -> None:
    assembler = Assembler(1000)
    assert assembler.offer(ClipOffer(3, "clipboard", 60 << 20)) == (
        "clipboard text of 62914560 bytes exceeds the 1000-byte limit"
    )
    # Chunks of the refused offer (already in flight) are dropped, not held.
    assert assembler.data(ClipData(3, base64.b64encode(b"x" * CHUNK_BYTES).decode())) is None
    assert assembler._open is None
    assert assembler.offer(ClipOffer(4, "clipboard", 1)) is None  # the next offer is fine


def test_more_than_announced_is_a_protocol_error() -> None:
    assembler = Assembler(1000)
    assert assembler.offer(ClipOffer(1, "clipboard", 2)) is None
    with pytest.raises(RemoteProtocolError, match="more than the 2 bytes"):
        assembler.data(ClipData(1, base64.b64encode(b"abc").decode()))


def test_second_offer_while_one_is_open_is_a_protocol_error() -> None:
    assembler = Assembler(1000)
    assembler.offer(ClipOffer(1, "clipboard", 2))
    with pytest.raises(RemoteProtocolError, match="while 1 is open"):
        assembler.offer(ClipOffer(2, "clipboard", 2))


def test_bad_base64_is_a_protocol_error() -> None:
    assembler = Assembler(1000)
    assembler.offer(ClipOffer(1, "clipboard", 2))
    with pytest.raises(RemoteProtocolError, match="not base64"):
        assembler.data(ClipData(1, "!!!!"))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"a\x00b", "clipboard text contains a NUL character"),
        (b"\xff\xfe", "clipboard text is not valid UTF-8"),
        (b"\xed\xa0\x80", "clipboard text is not valid UTF-8"),  # an encoded lone surrogate
    ],
)
def test_finished_text_checked(raw: bytes, reason: str) -> None:
    assembler = Assembler(1000)
    offer = ClipOffer(1, "primary", len(raw))
    assert assembler.offer(offer) is None
    assert assembler.data(ClipData(1, base64.b64encode(raw).decode())) == (offer, None, reason)


def test_refusal_counts_utf8_bytes() -> None:
    assert refusal("é" * 500, 1000) is None
    assert refusal("é" * 501, 1000) == "clipboard text of 1002 bytes exceeds the 1000-byte limit"


@pytest.mark.parametrize(
    ("policy", "write_control", "read_control"),
    [("both", True, True), ("to-host", True, False), ("to-viewer", False, True),
     ("off", False, False)],
)  # fmt: skip
def test_policy_table(policy: str, write_control: bool, read_control: bool) -> None:
    assert (may_write_host(policy, Access.CONTROL) is None) is write_control
    assert (may_read_host(policy, Access.CONTROL) is None) is read_control
    # A view-only viewer: never either way, whatever the policy.
    assert may_write_host(policy, Access.VIEW) is not None
    assert may_read_host(policy, Access.VIEW) is not None
