"""Framing: the handshake messages have exact sizes and every field a limit."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from rdesk.protocol.errors import CloseCode
from rdesk.protocol.limits import MAX_UPDATE_MESSAGE
from rdesk.tunnel import TunnelError, TunnelInitiator
from rdesk.tunnel.states import State
from rdesk.tunnel.wire import (
    CLIENT_HELLO_SIZE,
    MAX_CERTIFICATE,
    MAX_RECORD_PAYLOAD,
    MAX_WIRE_MESSAGE,
    RECORD_OVERHEAD,
    decode_close,
    parse_client_hello,
    parse_server_hello,
)
from tests.tunnel.identities import identity


def fresh() -> tuple[TunnelInitiator, bytes, bytes]:
    """A started viewer, its ClientHello, and the genuine ServerHello answering it."""
    ident = identity("a")
    viewer, host = TunnelInitiator(ident.host_id), ident.responder()
    hello = viewer.start()
    host.receive(hello)
    return viewer, hello, host.data_to_send()[0]


def test_record_limit_covers_the_largest_update() -> None:
    assert MAX_RECORD_PAYLOAD >= MAX_UPDATE_MESSAGE
    assert MAX_WIRE_MESSAGE >= MAX_UPDATE_MESSAGE + RECORD_OVERHEAD


def test_client_hello_has_one_size() -> None:
    _, hello, _ = fresh()
    assert len(hello) == CLIENT_HELLO_SIZE
    for wrong in (hello[:-1], hello + b"A"):
        host = identity("a").responder()
        with pytest.raises(TunnelError, match="ClientHello of"):
            host.receive(wrong)
        assert host.data_to_send() == [] and host.state is State.CLOSED


@pytest.mark.parametrize(
    "raw_id", [b"abcd" + b"0" * 9, b"U" * 13, b"\xff" * 13, b"O" + b"0" * 12]
)
def test_client_hello_id_must_be_canonical(raw_id: bytes) -> None:
    _, hello, _ = fresh()
    host = identity("a").responder()
    with pytest.raises(TunnelError, match="host ID"):
        host.receive(hello[:-13] + raw_id)


def test_version_mismatch_has_its_close_code() -> None:
    viewer, hello, server_hello = fresh()
    host = identity("a").responder()
    with pytest.raises(TunnelError, match="tunnel version 2") as info:
        host.receive(hello[:1] + b"\x02" + hello[2:])
    assert info.value.code == CloseCode.VERSION_MISMATCH
    with pytest.raises(TunnelError, match="tunnel version 9") as info:
        viewer.receive(server_hello[:1] + b"\x09" + server_hello[2:])
    assert info.value.code == CloseCode.VERSION_MISMATCH


def test_server_hello_certificate_length_is_bounded_and_consistent() -> None:
    _, _, genuine = fresh()
    at = 2 + 32 + 65
    (length,) = struct.unpack_from("!H", genuine, at)
    assert parse_server_hello(genuine).certificate == identity("a").cert_der
    for bad_length, reason in ((0, "certificate of 0 bytes"),
                               (MAX_CERTIFICATE + 1, "certificate of 8193 bytes"),
                               (length + 1, "does not match")):
        forged = genuine[:at] + struct.pack("!H", bad_length) + genuine[at + 2 :]
        viewer, _, _ = fresh()
        with pytest.raises(TunnelError, match=reason):
            viewer.receive(forged)
        assert viewer.data_to_send() == []
    viewer, _, _ = fresh()
    with pytest.raises(TunnelError, match="too short"):
        viewer.receive(genuine[:100])


def test_oversize_handshake_message_is_too_big() -> None:
    viewer, _, genuine = fresh()
    with pytest.raises(TunnelError) as info:
        viewer.receive(genuine + bytes(MAX_WIRE_MESSAGE))
    assert info.value.code == CloseCode.TOO_BIG


def test_server_hello_with_garbage_certificate_is_refused() -> None:
    viewer, _, genuine = fresh()
    parsed = parse_server_hello(genuine)
    forged = dataclasses.replace(parsed, certificate=b"\x30\x03abc").encode()
    with pytest.raises(TunnelError, match="not valid DER"):
        viewer.receive(forged)


def test_ephemeral_point_off_the_curve_is_refused() -> None:
    _, hello, _ = fresh()
    parsed = parse_client_hello(hello)
    for bad in (b"\x04" + b"\x01" * 64, b"\x02" + bytes(64)):
        host = identity("a").responder()
        with pytest.raises(TunnelError, match="point"):
            host.receive(dataclasses.replace(parsed, ephemeral=bad).encode())


@pytest.mark.parametrize(
    ("plaintext", "reason"),
    [(b"\x03", "close record of 1 bytes"), (b"\x03\xe7", "close code 999"),
     (b"\x13\x88", "close code 5000"), (b"\x03\xe8\xff", "not UTF-8"),
     (b"\x03\xe8a\nb", "spans lines"), (b"\x03\xe8" + b"a" * 124, "close record of 126")],
)
def test_malformed_close_records(plaintext: bytes, reason: str) -> None:
    with pytest.raises(TunnelError, match=reason):
        decode_close(plaintext)


def test_empty_message_is_refused() -> None:
    with pytest.raises(TunnelError, match="empty"):
        identity("a").responder().receive(b"")


def test_certificate_with_an_unsupported_curve_is_refused() -> None:
    """Found by the property tests: cryptography raises UnsupportedAlgorithm, not ValueError."""
    prime256v1 = bytes.fromhex("06082a8648ce3d030107")
    viewer, _, genuine = fresh()
    parsed = parse_server_hello(genuine)
    assert prime256v1 in parsed.certificate
    unknown = parsed.certificate.replace(prime256v1, prime256v1[:-1] + b"\x08")
    with pytest.raises(TunnelError, match="not valid DER"):
        viewer.receive(dataclasses.replace(parsed, certificate=unknown).encode())
