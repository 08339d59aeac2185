"""The relay control codec: every valid message survives it, nothing else gets through."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.protocol.errors import CloseCode
from rdesk.relay.messages import (
    MAX_RELAY_MESSAGE,
    MESSAGE_TYPES,
    NONCE_BYTES,
    SIG_BYTES,
    Challenge,
    Connect,
    Data,
    Heartbeat,
    HeartbeatAck,
    Message,
    Move,
    Prove,
    Raw,
    RawRendezvous,
    Refused,
    Register,
    Registered,
    RelayProtocolError,
    Rendezvous,
    Spliced,
    decode,
    encode,
)
from tests.relay.keys import shared_host_key

KEY = shared_host_key()
reasons = st.text(st.characters(codec="utf-8", categories=["L", "N", "P"],
                               include_characters=" "), max_size=120)
sessions = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                   min_size=22, max_size=22)

addresses = st.none() | st.text(st.characters(codec="ascii", categories=["L", "N", "P"]),
                                min_size=1, max_size=253)
raw_tickets = st.binary(min_size=32, max_size=32)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Register, st.just(KEY.id), st.binary(min_size=1, max_size=256),
              st.none() | st.text("abcdefXYZ0189_-", max_size=128), st.integers(1, 2**16)),
    st.builds(Challenge, st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES)),
    st.builds(Prove, st.binary(min_size=SIG_BYTES, max_size=SIG_BYTES)),
    st.builds(Registered, st.just(KEY.id), st.floats(1, 3600)),
    st.builds(Refused, reasons),
    st.just(Heartbeat()),
    st.just(HeartbeatAck()),
    st.builds(Rendezvous, sessions, st.none() | st.just("wss://relay-2.example:8443")),
    st.builds(Move, reasons, st.none() | st.just("wss://relay2.example:8443")),
    st.builds(Data, st.just(KEY.id), sessions,
              st.binary(min_size=SIG_BYTES, max_size=SIG_BYTES)),
    st.builds(Connect, st.just(KEY.id), st.integers(1, 2**16)),
    st.just(Spliced()),
    st.builds(RawRendezvous, sessions, st.none() | st.just("wss://relay-2.example:8443"),
              addresses, st.integers(1, 65535), raw_tickets),
    st.builds(Raw, addresses, st.integers(1, 65535), raw_tickets),
)


@settings(max_examples=300)
@given(messages)
def test_every_valid_message_round_trips_within_the_size_limit(message: Message) -> None:
    text = encode(message)
    assert len(text.encode()) <= MAX_RELAY_MESSAGE
    assert decode(text) == message


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=5000), st.binary(max_size=200)))
def test_arbitrary_input_is_refused_with_a_protocol_error_only(data: str | bytes) -> None:
    try:
        message = decode(data)
    except RelayProtocolError as exc:
        assert "\n" not in exc.reason and exc.reason
    else:
        assert type(message) in MESSAGE_TYPES.values()


VALUES = [0, -1, 2**70, 1.5, "", "x" * 5000, None, True, [], {}, "@@@", float("nan")]


@settings(max_examples=300)
@given(messages, st.data())
def test_a_mutated_field_is_refused_or_still_valid(message: Message, data: st.DataObject) -> None:
    obj = json.loads(encode(message))
    key = data.draw(st.sampled_from([*sorted(obj), "extra"]))
    obj[key] = data.draw(st.sampled_from(VALUES))
    try:
        again = decode(json.dumps(obj))
    except RelayProtocolError:
        return
    assert encode(again)  # what got through is a valid message


def test_refusals_say_what_is_wrong_in_one_line() -> None:
    cases = {
        b"{}": "relay control messages are text frames",
        "[]": "control message is not a JSON object",
        "{": "control message is not valid JSON",
        '{"t":"nope"}': "unknown relay message type 'nope'",
        '{"t":"heartbeat","t":"heartbeat"}': "duplicate field 't'",
        '{"t":"heartbeat","x":1}': "unexpected field 'x' in heartbeat",
        '{"t":"connect","id":"' + KEY.id + '"}': "missing field 'version' in connect",
        '{"t":"connect","id":"hello","version":1}': "bad host ID: a host ID is 13 symbols, not 5",
        '{"t":"registered","id":"' + KEY.id + '","heartbeat":NaN}': "non-finite number NaN",
        '{"t":"prove","sig":"AAAA"}': "binary field of 3 bytes, expected 64..64",
        '{"t":"raw","address":null,"port":0,"ticket":"' + "A" * 43 + '="}':
            "integer fields must be in 1..65535",
        '{"t":"raw","address":"","port":1,"ticket":"' + "A" * 43 + '="}':
            "text fields are strings of at most 253 characters",
        '{"t":"raw","address":null,"port":1,"ticket":"AAAA"}':
            "binary field of 3 bytes, expected 32..32",
    }
    for data, reason in cases.items():
        with pytest.raises(RelayProtocolError) as info:
            decode(data)
        assert info.value.reason == reason


def test_oversized_message_is_refused_as_too_big() -> None:
    text = json.dumps({"t": "refused", "reason": "x" * MAX_RELAY_MESSAGE})
    with pytest.raises(RelayProtocolError) as info:
        decode(text)
    assert info.value.code == CloseCode.TOO_BIG


def test_ids_travel_in_canonical_form() -> None:
    typed = KEY.id.lower().replace("-", " ")
    message = decode(json.dumps({"t": "connect", "id": typed, "version": 1}))
    assert isinstance(message, Connect) and message.id == KEY.id


def test_encode_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(ValueError, match="invalid refused"):
        encode(Refused("x" * 500))
    with pytest.raises(ValueError, match="invalid rendezvous"):
        encode(Rendezvous("short"))
