"""The codec: every message round-trips; anything else raises RemoteProtocolError only."""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rdesk.protocol import codec, limits
from rdesk.protocol.access import Access
from rdesk.protocol.codec import HEADER, RECT_HEADER, copy_payload, copy_source, decode, encode
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from rdesk.protocol.fields import AccessField, Bool, Field, Int, MayOmit, OneOf, Str
from rdesk.protocol.inputs import Key, Pointer
from rdesk.protocol.messages import (
    CONTROL_TYPES,
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Close,
    Hello,
    Ping,
    Welcome,
)
from rdesk.protocol.updates import Rect, Update
from rdesk.protocol.video import MAX_VIDEO_STREAMS, MIN_VIDEO_SIDE, pack_header

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies --------------------------------------------------------------------------------

#: Characters a Str field accepts: no C0 controls, no DEL, no C1 controls, no bidi
#: embeddings, overrides or isolates, no lone surrogates (docs/protocol.md §2).
TEXT_CHARS = st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters=[chr(i) for i in range(0x20)]
    + [chr(i) for i in range(0x7F, 0xA0)]
    + [chr(i) for i in range(0x202A, 0x202F)]
    + [chr(i) for i in range(0x2066, 0x206A)],
)


def field_values(spec: Field) -> st.SearchStrategy[object]:
    """Every valid value of one schema field."""
    if isinstance(spec, Int):
        return st.integers(spec.lo, spec.hi)
    if isinstance(spec, Str):
        return st.text(TEXT_CHARS, min_size=spec.min_len, max_size=min(spec.max_len, 300))
    if isinstance(spec, Bool):
        return st.booleans()
    if isinstance(spec, OneOf):
        return st.sampled_from(spec.values)
    if isinstance(spec, AccessField):
        return st.sampled_from(list(Access))
    if isinstance(spec, MayOmit):  # None: left out of the message
        return st.none() | field_values(spec.field)
    raise AssertionError(f"no strategy for {spec!r}")


def control_messages_of(cls: type) -> st.SearchStrategy[object]:
    """Valid messages of one control type, built from its FIELDS schema."""
    return st.builds(cls, **{name: field_values(spec) for name, spec in cls.FIELDS.items()})


control_messages = st.one_of([control_messages_of(cls) for cls in CONTROL_TYPES.values()])


@st.composite
def rects(draw: st.DrawFn, max_side: int = limits.MAX_SCREEN_SIDE) -> Rect:
    x = draw(st.integers(0, max_side - 1))
    y = draw(st.integers(0, max_side - 1))
    w = draw(st.integers(1, max_side - x))
    h = draw(st.integers(1, max_side - y))
    encoding = draw(st.sampled_from(list(Encoding)))
    if encoding is Encoding.COPY:
        payload = copy_payload(
            draw(st.integers(0, max_side - w)), draw(st.integers(0, max_side - h))
        )
    elif encoding is Encoding.H264:
        assume(w >= MIN_VIDEO_SIDE and h >= MIN_VIDEO_SIDE)
        w, h = w - w % 2, h - h % 2
        header = pack_header(draw(st.integers(0, MAX_VIDEO_STREAMS - 1)), draw(st.booleans()))
        payload = header + draw(st.binary(min_size=1, max_size=64))
    else:
        payload = draw(st.binary(min_size=1, max_size=64))
    return Rect(x, y, w, h, encoding, payload)


@st.composite
def updates(draw: st.DrawFn, max_side: int = limits.MAX_SCREEN_SIDE, min_seq: int = 0) -> Update:
    return Update(
        seq=draw(st.integers(min_seq, 0xFFFFFFFF)),
        timestamp_us=draw(st.integers(0, 2**64 - 1)),
        rects=tuple(draw(st.lists(rects(max_side), max_size=6))),
        exact=draw(st.booleans()),
    )


messages = st.one_of(control_messages, updates())

#: Arbitrary JSON values, for putting wrong types into fields.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def decodes_cleanly(data: str | bytes) -> None:
    """``decode(data)`` must either give a valid message or raise RemoteProtocolError."""
    try:
        message = decode(data)
    except RemoteProtocolError as exc:
        assert isinstance(exc.code, CloseCode)
        assert str(exc)
        return
    # Whatever decodes must be a valid message: it re-encodes and round-trips.
    assert decode(encode(message)) == message


# --- round trips -------------------------------------------------------------------------------


@MEDIUM
@given(messages)
def test_round_trip(message: object) -> None:
    frame = encode(message)
    assert isinstance(frame, bytes if isinstance(message, Update) else str)
    assert decode(frame) == message


@pytest.mark.parametrize("cls", list(CONTROL_TYPES.values()), ids=list(CONTROL_TYPES))
@FAST
@given(data=st.data())
def test_round_trip_each_control_type(cls: type, data: st.DataObject) -> None:
    message = data.draw(control_messages_of(cls))
    text = encode(message)
    assert json.loads(text)["t"] == cls.T
    assert decode(text) == message
    with pytest.raises(RemoteProtocolError):  # text and binary frames are never confused
        decode(text.encode())


def test_every_control_type_has_a_strategy() -> None:
    for cls in CONTROL_TYPES.values():
        assert list(cls.FIELDS) == [f.name for f in dataclasses.fields(cls)]
        for spec in cls.FIELDS.values():
            field_values(spec)


@FAST
@given(updates())
def test_update_round_trip_bytes_like(update: Update) -> None:
    frame = encode(update)
    assert decode(bytearray(frame)) == update
    assert decode(memoryview(frame)) == update


def test_copy_payload_round_trip() -> None:
    rect = Rect(10, 20, 30, 40, Encoding.COPY, copy_payload(5, 6))
    assert copy_source(decode(encode(Update(1, 2, (rect,)))).rects[0]) == (5, 6)


# --- garbage never escapes as anything but RemoteProtocolError ---------------------------------


@MEDIUM
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    decodes_cleanly(data)


@MEDIUM
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    decodes_cleanly(text)


@MEDIUM
@given(
    st.binary(max_size=40).map(
        lambda b: HEADER.pack(1, 0, len(b) % 4, 0, 0) + b
    )
)
def test_random_bytes_with_plausible_header(data: bytes) -> None:
    decodes_cleanly(data)


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if op == "truncate":
            buf = buf[: draw(st.integers(0, len(buf)))]
        elif op == "insert":
            buf.insert(draw(st.integers(0, len(buf))), draw(st.integers(0, 255)))
        elif buf:
            i = draw(st.integers(0, len(buf) - 1))
            if op == "flip":
                buf[i] ^= 1 << draw(st.integers(0, 7))
            elif op == "set":
                buf[i] = draw(st.integers(0, 255))
            else:
                del buf[i]
    return bytes(buf)


@MEDIUM
@given(st.data())
def test_mutated_updates(data: st.DataObject) -> None:
    frame = encode(data.draw(updates()))
    assert isinstance(frame, bytes)
    decodes_cleanly(data.draw(byte_mutations(frame)))


@MEDIUM
@given(st.data())
def test_mutated_control_bytes(data: st.DataObject) -> None:
    text = encode(data.draw(control_messages))
    assert isinstance(text, str)
    mutated = data.draw(byte_mutations(text.encode()))
    # Decoded as text (as a websocket text frame would be, after UTF-8 validation) ...
    decodes_cleanly(mutated.decode("utf-8", "replace"))
    # ... and the same bytes arriving as a binary frame.
    decodes_cleanly(mutated)


@MEDIUM
@given(st.data())
def test_mutated_control_text(data: st.DataObject) -> None:
    text = encode(data.draw(control_messages))
    assert isinstance(text, str)
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if op == "insert":
            chars.insert(data.draw(st.integers(0, len(chars))), data.draw(st.characters()))
        elif chars:
            i = data.draw(st.integers(0, len(chars) - 1))
            if op == "replace":
                chars[i] = data.draw(st.characters())
            else:
                del chars[i]
    decodes_cleanly("".join(chars))


@MEDIUM
@given(st.data())
def test_wrong_type_in_field(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from([c for c in CONTROL_TYPES.values() if c.FIELDS]))
    obj = json.loads(encode(data.draw(control_messages_of(cls))))
    name = data.draw(st.sampled_from(sorted(cls.FIELDS)))
    value = data.draw(json_values)
    obj[name] = value
    text = json.dumps(obj)
    if cls.FIELDS[name].check(value) is None:
        assert decode(text) == cls(**{k: v for k, v in obj.items() if k != "t"})
    else:
        with pytest.raises(RemoteProtocolError):
            decode(text)


@FAST
@given(st.data())
def test_extra_field_refused(data: st.DataObject) -> None:
    message = data.draw(control_messages)
    obj = json.loads(encode(message))
    key = data.draw(st.text(max_size=10).filter(lambda k: k not in obj))
    obj[key] = data.draw(json_values)
    with pytest.raises(RemoteProtocolError):
        decode(json.dumps(obj))


@FAST
@given(st.data())
def test_missing_field_refused(data: st.DataObject) -> None:
    def required(cls: type) -> list[str]:
        return sorted(n for n, f in cls.FIELDS.items() if not isinstance(f, MayOmit))

    cls = data.draw(st.sampled_from([c for c in CONTROL_TYPES.values() if required(c)]))
    obj = json.loads(encode(data.draw(control_messages_of(cls))))
    del obj[data.draw(st.sampled_from(required(cls)))]
    with pytest.raises(RemoteProtocolError):
        decode(json.dumps(obj))


@FAST
@given(st.integers(0, 0xFFFFFFFF), st.integers(-(2**40), 2**40))
def test_ack_hold_bounds(seq: int, hold: int) -> None:
    """``ack.hold_us`` may be left out (an older viewer's ack) and is otherwise an integer
    in [0, MAX_ACK_HOLD_US], both ways: the encoder refuses what the decoder would."""
    assert decode(f'{{"t":"ack","seq":{seq}}}') == Ack(seq)
    assert json.loads(encode(Ack(seq))) == {"t": "ack", "seq": seq}  # no member at all
    text = f'{{"t":"ack","seq":{seq},"hold_us":{hold}}}'
    if 0 <= hold <= limits.MAX_ACK_HOLD_US:
        assert decode(text) == Ack(seq, hold)
        assert encode(Ack(seq, hold)) == text
    else:
        with pytest.raises(RemoteProtocolError, match="hold_us"):
            decode(text)
        with pytest.raises(LocalProtocolError, match="hold_us"):
            encode(Ack(seq, hold))
    with pytest.raises(RemoteProtocolError, match="hold_us"):  # null is no integer
        decode(f'{{"t":"ack","seq":{seq},"hold_us":null}}')


@FAST
@given(control_messages)
def test_duplicate_key_refused(message: object) -> None:
    text = encode(message)
    assert isinstance(text, str)
    # Repeat the type member with the same value: still refused.
    with pytest.raises(RemoteProtocolError, match="duplicate"):
        decode(text[:-1] + f',"t":{json.dumps(message.T)}}}')  # type: ignore[attr-defined]


def test_duplicate_field_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="duplicate"):
        decode('{"t":"ping","id":1,"id":1}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_refused(constant: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(f'{{"t":"ping","id":{constant}}}')
    with pytest.raises(RemoteProtocolError):
        decode(f'{{"t":"ping","id":1,"x":[{constant}]}}')


def test_overflowing_float_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        decode('{"t":"ping","id":1e999}')


def test_huge_integer_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        decode('{"t":"ping","id":' + "9" * 5000 + "}")


@pytest.mark.parametrize("depth", [10, 1000, 5000])
def test_deep_nesting_refused(depth: int) -> None:
    with pytest.raises(RemoteProtocolError):
        decode('{"t":"ping","id":' + "[" * depth + "]" * depth + "}")
    with pytest.raises(RemoteProtocolError):
        decode('{"t":"ping","id":1,"x":' + '{"a":' * depth + "1" + "}" * depth + "}")


def test_huge_strings_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        decode(json.dumps({"t": "close", "code": 1000, "reason": "x" * (limits.MAX_STRING + 1)}))
    with pytest.raises(RemoteProtocolError):
        decode(json.dumps({"t": "close", "code": 1000, "reason": "x" * 100_000}))
    ok = json.dumps({"t": "close", "code": 1000, "reason": "x" * limits.MAX_STRING})
    assert decode(ok) == Close(1000, "x" * limits.MAX_STRING)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "null",
        "[]",
        '"ping"',
        "1",
        "{}",
        '{"t":null}',
        '{"t":1}',
        '{"t":["ping"]}',
        '{"t":"nope"}',
        '{"T":"ping","id":1}',
        '{"t":"ping","id":1',
        '{"t":"ping","id":1}}',
        '{"t":"ping","id":1} {"t":"ping","id":1}',
        "\ufeff{}",
    ],
)
def test_not_a_message(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(text)


def test_control_message_size_limit() -> None:
    base = '{"t":"ping","id":1}'
    exact = base + " " * (limits.MAX_CONTROL_MESSAGE - len(base))
    assert len(exact.encode()) == limits.MAX_CONTROL_MESSAGE
    assert decode(exact) == Ping(1)
    with pytest.raises(RemoteProtocolError) as info:
        decode(exact + " ")
    assert info.value.code is CloseCode.TOO_BIG


def test_control_message_size_limit_counts_utf8_bytes() -> None:
    # Fewer characters than the limit, more bytes: refused as too big.
    head, tail = '{"t":"close","code":1000,"reason":"', '"}'
    n = (limits.MAX_CONTROL_MESSAGE - len(head) - len(tail)) // 2 + 1
    text = head + "é" * n + tail
    assert len(text) <= limits.MAX_CONTROL_MESSAGE < len(text.encode())
    with pytest.raises(RemoteProtocolError) as info:
        decode(text)
    assert info.value.code is CloseCode.TOO_BIG


def test_lone_surrogate_in_text_frame() -> None:
    decodes_cleanly('{"t":"close","code":1000,"reason":"\ud800"}')


def test_escaped_lone_surrogate_refused() -> None:
    # JSON escapes can spell a lone surrogate; it is not text and cannot be re-encoded.
    with pytest.raises(RemoteProtocolError):
        decode('{"t":"close","code":1000,"reason":"\\ud800"}')
    # A correctly escaped pair is a real character.
    assert decode('{"t":"close","code":1000,"reason":"\\ud83d\\ude00"}') == Close(1000, "😀")


# --- specific field rules ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "false"])
def test_bool_is_not_an_int(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(f'{{"t":"ping","id":{value}}}')
    with pytest.raises(LocalProtocolError):
        encode(Ping(True))


@pytest.mark.parametrize("value", ["1.0", "1.5", "1e0", "-0.0"])
def test_float_is_not_an_int(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(f'{{"t":"ping","id":{value}}}')
    with pytest.raises(LocalProtocolError):
        encode(Ping(1.0))  # type: ignore[arg-type]


def test_int_is_not_a_bool() -> None:
    with pytest.raises(RemoteProtocolError):
        decode('{"t":"key","keysym":65,"down":1}')
    assert decode('{"t":"key","keysym":65,"down":true}') == Key(65, True)


@pytest.mark.parametrize("value", ["-1", "4294967296"])
def test_int_range(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(f'{{"t":"ping","id":{value}}}')


@pytest.mark.parametrize("char", [chr(i) for i in range(0x20)] + ["\x7f"])
def test_control_characters_in_strings_refused(char: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(json.dumps({"t": "close", "code": 1000, "reason": f"a{char}b"}))
    with pytest.raises(LocalProtocolError):
        encode(Close(1000, f"a{char}b"))


def test_one_of() -> None:
    with pytest.raises(RemoteProtocolError):
        decode(json.dumps({"t": "welcome", "role": "admin", "viewer_id": 1, "width": 1,
                           "height": 1, "name": ""}))
    assert decode(encode(Welcome("view", 1, 1, 1, "")))


def test_nonce_length() -> None:
    good = Auth(PROTOCOL_VERSION, "A" * 24, "password", "s", "n")
    assert decode(encode(good)) == good
    for nonce in ("A" * 23, "A" * 25):
        with pytest.raises(LocalProtocolError):
            encode(dataclasses.replace(good, nonce=nonce))


def test_auth_repr_hides_secret() -> None:
    secret = "hunter2-very-secret"
    auth = Auth(PROTOCOL_VERSION, "N" * 24, "password", secret, "alice")
    assert secret not in repr(auth)
    assert secret not in str(auth)
    assert secret not in f"{auth}"
    assert secret not in repr([auth])
    assert "alice" in repr(auth)


@FAST
@given(control_messages_of(Auth))
def test_auth_repr_never_contains_secret(auth: Auth) -> None:
    assume(len(auth.secret) >= 3)
    assume(auth.secret not in f"Auth(version={auth.version}, method={auth.method!r}, "
           f"name={auth.name!r})")
    assert auth.secret not in repr(auth)


def test_encode_invalid_control_messages() -> None:
    bad = [
        Ping(-1),
        Ping(2**32),
        Ping("1"),  # type: ignore[arg-type]
        Pointer(limits.MAX_SCREEN_SIDE, 0, 0),
        Key(0, True),
        Key(65, 1),  # type: ignore[arg-type]
        Close(999, ""),
        Close(5000, ""),
        Welcome("root", 1, 10, 10, ""),
        Welcome("view", 1, 0, 10, ""),
        Hello("vnc", 1, "A" * 24, "password", ""),
        Auth(1, "A" * 24, "kerberos", "", ""),
        Auth(1, "A" * 24, "password", "x" * (limits.MAX_SECRET + 1), ""),
    ]
    for message in bad:
        with pytest.raises(LocalProtocolError):
            encode(message)


@pytest.mark.parametrize("thing", [None, "ping", b"", {"t": "ping", "id": 1}, Rect, object()])
def test_encode_non_messages(thing: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode(thing)  # type: ignore[arg-type]


def test_encode_subclass_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class MyPing(Ping):
        pass

    with pytest.raises(LocalProtocolError):
        encode(MyPing(1))


def test_decode_non_frames() -> None:
    with pytest.raises(LocalProtocolError):
        decode(123)  # type: ignore[arg-type]


# --- the binary update layout ------------------------------------------------------------------


def update_bytes(*rects: tuple[int, int, int, int, int, int, bytes], nrects: int | None = None,
                 kind: int = 1, flags: int = 0, seq: int = 1, ts: int = 2) -> bytes:
    out = HEADER.pack(kind, flags, len(rects) if nrects is None else nrects, seq, ts)
    for x, y, w, h, enc, reserved, payload in rects:
        out += RECT_HEADER.pack(x, y, w, h, enc, reserved, len(payload)) + payload
    return out


def test_layout_is_documented_one() -> None:
    frame = encode(Update(7, 0x0102030405060708, (Rect(1, 2, 3, 4, Encoding.PNG, b"xyz"),)))
    assert frame == (
        bytes([1, 0, 0, 1]) + (7).to_bytes(4, "big") + bytes(range(1, 9))
        + b"\x00\x01\x00\x02\x00\x03\x00\x04" + bytes([2, 0]) + (3).to_bytes(4, "big") + b"xyz"
    )
    assert HEADER.size == 16 and RECT_HEADER.size == 14


def test_valid_hand_built_update() -> None:
    update = decode(update_bytes((0, 0, 1, 1, 1, 0, b"j")))
    assert update == Update(1, 2, (Rect(0, 0, 1, 1, Encoding.JPEG, b"j"),))
    assert decode(update_bytes()) == Update(1, 2, ())
    assert decode(update_bytes(flags=codec.FLAG_EXACT)) == Update(1, 2, (), exact=True)


@pytest.mark.parametrize(
    "rect",
    [
        (0, 0, 0, 1, 1, 0, b"j"),  # w = 0
        (0, 0, 1, 0, 1, 0, b"j"),  # h = 0
        (limits.MAX_SCREEN_SIDE, 0, 1, 1, 1, 0, b"j"),  # x off the largest screen
        (0, limits.MAX_SCREEN_SIDE, 1, 1, 1, 0, b"j"),
        (1, 0, limits.MAX_SCREEN_SIDE, 1, 1, 0, b"j"),  # x + w beyond MAX_SCREEN_SIDE
        (0, 1, 1, limits.MAX_SCREEN_SIDE, 1, 0, b"j"),  # y + h beyond
        (0, 0, limits.MAX_SCREEN_SIDE + 1, 1, 1, 0, b"j"),
        (0, 0, 1, 1, 0, 0, b"j"),  # unknown encoding 0
        (0, 0, 1, 1, 6, 0, b"j"),  # unknown encoding 6
        (0, 0, 16, 16, 5, 0, b"\0\0\0\0"),  # video header without an access unit
        (0, 0, 16, 16, 5, 0, b"\x08\0\0\0j"),  # stream 8
        (0, 0, 16, 16, 5, 0, b"\0\x02\0\0j"),  # unknown video flag
        (0, 0, 16, 16, 5, 0, b"\0\0\0\x01j"),  # reserved not zero
        (0, 0, 17, 16, 5, 0, b"\0\0\0\0j"),  # odd width
        (0, 0, 16, 15, 5, 0, b"\0\0\0\0j"),  # odd height
        (0, 0, 14, 16, 5, 0, b"\0\0\0\0j"),  # narrower than MIN_VIDEO_SIDE
        (0, 0, 1, 1, 255, 0, b"j"),
        (0, 0, 1, 1, 1, 1, b"j"),  # reserved byte not zero
        (0, 0, 1, 1, 1, 0x80, b"j"),
        (0, 0, 1, 1, 1, 0, b""),  # empty payload
        (0, 0, 1, 1, 4, 0, b"\0\0\0"),  # copy payload too short
        (0, 0, 1, 1, 4, 0, b"\0\0\0\0\0"),  # copy payload too long
        (0, 0, 2, 1, 4, 0, struct.pack("!HH", limits.MAX_SCREEN_SIDE - 1, 0)),  # copy source off
        (0, 0, 1, 2, 4, 0, struct.pack("!HH", 0, limits.MAX_SCREEN_SIDE - 1)),
    ],
)
def test_bad_rect_refused(rect: tuple[int, int, int, int, int, int, bytes]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(update_bytes(rect))


def test_rect_at_the_far_edge_accepted() -> None:
    side = limits.MAX_SCREEN_SIDE
    update = decode(update_bytes((side - 1, side - 1, 1, 1, 2, 0, b"p"),
                                 (0, 0, side, side, 4, 0, struct.pack("!HH", 0, 0))))
    assert len(update.rects) == 2


@pytest.mark.parametrize("length", [2, 100, 2**31, 2**32 - 1])
def test_payload_running_past_the_end(length: int) -> None:
    good = update_bytes((0, 0, 1, 1, 1, 0, b"j"))
    bad = good[:-1 - RECT_HEADER.size] + RECT_HEADER.pack(0, 0, 1, 1, 1, 0, length) + b"j"
    with pytest.raises(RemoteProtocolError):
        decode(bad)


def test_payload_length_wrapping_to_a_later_rect() -> None:
    # A length that would wrap a 32-bit offset back into the message must not be accepted.
    first = RECT_HEADER.pack(0, 0, 1, 1, 1, 0, 2**32 - RECT_HEADER.size - 1)
    frame = HEADER.pack(1, 0, 2, 1, 2) + first + RECT_HEADER.pack(0, 0, 1, 1, 1, 0, 1) + b"j"
    with pytest.raises(RemoteProtocolError):
        decode(frame)


@pytest.mark.parametrize("extra", [b"\0", b"junk", b"\0" * 16])
def test_trailing_bytes_refused(extra: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="trailing"):
        decode(update_bytes((0, 0, 1, 1, 1, 0, b"j")) + extra)


def test_header_checks() -> None:
    for frame in (
        b"",
        update_bytes()[:-1],
        update_bytes(kind=0),
        update_bytes(kind=2),
        update_bytes(flags=2),
        update_bytes(flags=0x80),
        update_bytes(flags=0xFF),
        update_bytes(nrects=1),  # a rect promised, none present
        update_bytes((0, 0, 1, 1, 1, 0, b"j"), nrects=2),
        update_bytes(nrects=limits.MAX_RECTS_PER_UPDATE + 1),
        update_bytes((0, 0, 1, 1, 1, 0, b"j"))[:-1],  # truncated payload
        update_bytes((0, 0, 1, 1, 1, 0, b"j"))[: HEADER.size + 5],  # truncated rect header
    ):
        with pytest.raises(RemoteProtocolError):
            decode(frame)


def test_max_rects() -> None:
    rect = Rect(0, 0, 1, 1, Encoding.JPEG, b"j")
    update = Update(1, 1, (rect,) * limits.MAX_RECTS_PER_UPDATE)
    assert decode(encode(update)) == update
    with pytest.raises(LocalProtocolError):
        encode(Update(1, 1, (rect,) * (limits.MAX_RECTS_PER_UPDATE + 1)))


def test_update_size_limit() -> None:
    big = b"\0" * limits.MAX_RECT_PAYLOAD
    fill = limits.MAX_UPDATE_MESSAGE - HEADER.size - 2 * RECT_HEADER.size - len(big)
    exact = Update(1, 1, (Rect(0, 0, 1, 1, Encoding.PNG, big),
                          Rect(0, 0, 1, 1, Encoding.PNG, b"\1" * fill)))
    frame = encode(exact)
    assert len(frame) == limits.MAX_UPDATE_MESSAGE
    assert decode(frame) == exact
    over = Update(1, 1, (exact.rects[0], Rect(0, 0, 1, 1, Encoding.PNG, b"\1" * (fill + 1))))
    with pytest.raises(LocalProtocolError):
        encode(over)
    with pytest.raises(RemoteProtocolError) as info:
        decode(frame + b"\0")
    assert info.value.code is CloseCode.TOO_BIG
    hand_built = update_bytes((0, 0, 1, 1, 2, 0, big), (0, 0, 1, 1, 2, 0, b"\1" * (fill + 1)))
    assert len(hand_built) == limits.MAX_UPDATE_MESSAGE + 1
    with pytest.raises(RemoteProtocolError) as info:
        decode(hand_built)
    assert info.value.code is CloseCode.TOO_BIG


def test_rect_payload_limit() -> None:
    with pytest.raises(LocalProtocolError):
        too_big = b"\0" * (limits.MAX_RECT_PAYLOAD + 1)
        encode(Update(1, 1, (Rect(0, 0, 1, 1, Encoding.PNG, too_big),)))
    with pytest.raises(RemoteProtocolError):
        decode(update_bytes((0, 0, 1, 1, 2, 0, b"\0" * (limits.MAX_RECT_PAYLOAD + 1))))


@pytest.mark.parametrize(
    "update",
    [
        Update(-1, 0, ()),
        Update(2**32, 0, ()),
        Update(0, -1, ()),
        Update(0, 2**64, ()),
        Update(1.0, 0, ()),  # type: ignore[arg-type]
        Update(True, 0, ()),  # type: ignore[arg-type]
        Update(0, 0.5, ()),  # type: ignore[arg-type]
        Update(0, 0, (Rect(0, 0, 0, 1, Encoding.JPEG, b"j"),)),
        Update(0, 0, (Rect(-1, 0, 1, 1, Encoding.JPEG, b"j"),)),
        Update(0, 0, (Rect(0, 0, 1, 1, Encoding.JPEG, b""),)),
        Update(0, 0, (Rect(0, 0, 1, 1, Encoding.JPEG, "j"),)),  # type: ignore[arg-type]
        Update(0, 0, (Rect(0, 0, 1, 1, 1, b"j"),)),  # type: ignore[arg-type]
        Update(0, 0, (Rect(0, 0, 1.0, 1, Encoding.JPEG, b"j"),)),  # type: ignore[arg-type]
        Update(0, 0, (Rect(1, 0, limits.MAX_SCREEN_SIDE, 1, Encoding.JPEG, b"j"),)),
        Update(0, 0, (Rect(0, 0, 1, 1, Encoding.COPY, b"\0\0"),)),
        Update(
            0, 0, (Rect(0, 0, 2, 1, Encoding.COPY, copy_payload(limits.MAX_SCREEN_SIDE - 1, 0)),)
        ),
    ],
)
def test_encode_invalid_update(update: Update) -> None:
    with pytest.raises(LocalProtocolError):
        encode(update)


def test_decoded_floats_never_reach_messages() -> None:
    for cls in CONTROL_TYPES.values():
        for name, spec in cls.FIELDS.items():
            if isinstance(spec, Int):
                assert spec.check(float(spec.lo)) is not None, (cls.T, name)
                assert spec.check(math.nan) is not None
                assert spec.check(True) is not None


def test_module_exports() -> None:
    for name in codec.__all__:
        assert hasattr(codec, name)
