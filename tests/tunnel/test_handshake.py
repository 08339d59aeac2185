"""The handshake: it completes between the real ends, and a hostile relay cannot get a viewer
to accept any key but the one its ID (and pin) names — refused before any record is sent."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rdesk.protocol.errors import CloseCode, LocalProtocolError
from rdesk.protocol.fingerprint import fingerprint, key_fingerprint
from rdesk.tunnel import (
    Established,
    HostIdentityError,
    Message,
    TunnelError,
    TunnelInitiator,
    TunnelResponder,
)
from rdesk.tunnel.keys import point_of, sign_transcript, transcript_hash
from rdesk.tunnel.states import State
from rdesk.tunnel.wire import ServerHello, parse_client_hello, parse_server_hello
from tests.tunnel.identities import handshake, identity


def refused_before_any_record(viewer: TunnelInitiator) -> None:
    """The viewer is closed, has nothing queued, and will seal nothing."""
    assert viewer.state is State.CLOSED
    assert viewer.data_to_send() == []
    with pytest.raises(LocalProtocolError):
        viewer.send("password")
    assert viewer.close() is None


def test_round_trip_names_the_verified_host() -> None:
    ident = identity("a")
    viewer, host = TunnelInitiator(ident.host_id), ident.responder()
    event = handshake(viewer, host)
    assert event == Established(ident.host_id, ident.cert_der, key_fingerprint(ident.cert_der))
    assert viewer.state is host.state is State.OPEN


def test_round_trip_with_pin_and_loosely_typed_id() -> None:
    ident = identity("a")
    typed = ident.host_id.lower().replace("-", " ")
    viewer = TunnelInitiator(typed, key_fingerprint(ident.cert_der))
    assert handshake(viewer, ident.responder()).host_id == ident.host_id


def test_relay_presenting_its_own_valid_host_key_is_refused() -> None:
    """The relay answers with a genuine handshake of another host (its own key and cert)."""
    wanted, relays_own = identity("a"), identity("relay")
    viewer = TunnelInitiator(wanted.host_id)
    hello = viewer.start()
    # The relay's responder would refuse the ID; the relay rewrites the ID in the hello.
    rewritten = dataclasses.replace(parse_client_hello(hello), host_id=relays_own.host_id)
    fake = relays_own.responder()
    fake.receive(rewritten.encode())
    (server_hello,) = fake.data_to_send()
    with pytest.raises(HostIdentityError, match=f"has ID {relays_own.host_id}, not") as info:
        viewer.receive(server_hello)
    assert info.value.code == CloseCode.POLICY
    refused_before_any_record(viewer)


def test_relay_signing_its_own_handshake_under_the_real_certificate_is_refused() -> None:
    """The relay shows the right host's certificate but can only sign with its own key."""
    wanted, relays_own = identity("a"), identity("relay")
    viewer = TunnelInitiator(wanted.host_id)
    hello = viewer.start()
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    unsigned = ServerHello(1, b"r" * 32, point_of(ephemeral), wanted.cert_der, b"")
    signature = sign_transcript(relays_own.key, transcript_hash(hello, unsigned.signed_part()))
    forged = dataclasses.replace(unsigned, signature=signature).encode()
    with pytest.raises(HostIdentityError, match="signature over this handshake"):
        viewer.receive(forged)
    refused_before_any_record(viewer)


def test_relay_substituting_the_ephemeral_key_in_either_hello_is_refused() -> None:
    """A man in the middle that swaps in its own ephemeral key on either leg."""
    ident = identity("a")
    mitm = point_of(ec.generate_private_key(ec.SECP256R1()))
    # Towards the host: the host signs a transcript the viewer never sent.
    viewer, host = TunnelInitiator(ident.host_id), ident.responder()
    hello = viewer.start()
    host.receive(dataclasses.replace(parse_client_hello(hello), ephemeral=mitm).encode())
    with pytest.raises(HostIdentityError, match="signature"):
        viewer.receive(host.data_to_send()[0])
    refused_before_any_record(viewer)
    # Towards the viewer: the signature covered the host's real ephemeral key.
    viewer, host = TunnelInitiator(ident.host_id), ident.responder()
    host.receive(viewer.start())
    genuine = parse_server_hello(host.data_to_send()[0])
    with pytest.raises(HostIdentityError, match="signature"):
        viewer.receive(dataclasses.replace(genuine, ephemeral=mitm).encode())
    refused_before_any_record(viewer)


def test_relay_sending_the_viewer_to_another_host_is_refused_by_that_host() -> None:
    """ID swap, hello forwarded as is: the other host sees it was not asked for."""
    wanted, other = identity("a"), identity("b")
    viewer, host_b = TunnelInitiator(wanted.host_id), other.responder()
    with pytest.raises(TunnelError, match=f"this host is {other.host_id}") as info:
        host_b.receive(viewer.start())
    assert info.value.code == CloseCode.POLICY
    assert host_b.data_to_send() == []
    assert host_b.state is State.CLOSED


def test_relay_sending_the_viewer_to_another_host_with_a_rewritten_id_is_refused() -> None:
    """ID swap, hello rewritten to the other host's ID: that host answers; the viewer refuses."""
    wanted, other = identity("a"), identity("b")
    viewer, host_b = TunnelInitiator(wanted.host_id), other.responder()
    hello = parse_client_hello(viewer.start())
    host_b.receive(dataclasses.replace(hello, host_id=other.host_id).encode())
    with pytest.raises(HostIdentityError, match=f"has ID {other.host_id}"):
        viewer.receive(host_b.data_to_send()[0])
    refused_before_any_record(viewer)


def _certificate_for(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(7)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_key_pin_survives_a_certificate_reissued_for_the_key() -> None:
    """A new certificate for the same key: the key pin still names the host."""
    ident = identity("a")
    reissued = _certificate_for(ident.key, "same key, re-issued")
    viewer = TunnelInitiator(ident.host_id, key_fingerprint(ident.cert_der))
    host = TunnelResponder(ident.key, reissued)
    event = handshake(viewer, host)
    assert event == Established(ident.host_id, reissued, key_fingerprint(ident.cert_der))


def test_the_key_pin_of_another_key_is_refused() -> None:
    """The pin of another key: refused even though this host's ID is the one asked for."""
    ident, other = identity("a"), identity("b")
    viewer = TunnelInitiator(ident.host_id, key_fingerprint(other.cert_der))
    with pytest.raises(HostIdentityError, match="is not the pinned"):
        viewer.receive(_answer(viewer, ident.responder()))
    refused_before_any_record(viewer)


def test_pin_is_checked_as_well_as_the_id() -> None:
    """A certificate pin (as pins were before key pins) still works, for that certificate
    only: the same key (so the ID matches) in another certificate is refused."""
    ident = identity("a")
    other_cert = _certificate_for(ident.key, "same key, other certificate")
    viewer = TunnelInitiator(ident.host_id, fingerprint(ident.cert_der))
    with pytest.raises(HostIdentityError, match="is not the pinned"):
        viewer.receive(_answer(viewer, TunnelResponder(ident.key, other_cert)))
    refused_before_any_record(viewer)


def _answer(viewer: TunnelInitiator, host: TunnelResponder) -> bytes:
    host.receive(viewer.start())
    (server_hello,) = host.data_to_send()
    return server_hello


def test_non_p256_certificate_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="not ECDSA P-256"):
        TunnelResponder(key, _certificate_for(key, "p384"))  # type: ignore[arg-type]


def test_responder_refuses_a_certificate_of_another_key() -> None:
    with pytest.raises(ValueError, match="does not carry this private key"):
        TunnelResponder(identity("a").key, identity("b").cert_der)


def test_replayed_server_hello_from_another_session_is_refused() -> None:
    """The relay keeps a genuine ServerHello and plays it to the next viewer."""
    ident = identity("a")
    old_viewer, old_host = TunnelInitiator(ident.host_id), ident.responder()
    recorded = _answer(old_viewer, old_host)
    viewer = TunnelInitiator(ident.host_id)
    viewer.start()
    with pytest.raises(HostIdentityError, match="signature"):
        viewer.receive(recorded)
    refused_before_any_record(viewer)


def test_replayed_client_hello_and_finished_from_another_session_are_refused() -> None:
    """The relay replays a whole viewer opening to the host: Finished cannot confirm it."""
    ident = identity("a")
    old_viewer, old_host = TunnelInitiator(ident.host_id), ident.responder()
    client_hello = old_viewer.start()
    old_host.receive(client_hello)
    old_viewer.receive(old_host.data_to_send()[0])
    (finished,) = old_viewer.data_to_send()
    record = old_viewer.send("after the handshake")
    host = ident.responder()
    assert host.receive(client_hello) is None  # the host cannot tell yet: fresh random...
    with pytest.raises(TunnelError, match="failed authentication"):
        host.receive(finished)  # ...but the old keys do not open under the new transcript
    assert host.state is State.CLOSED
    host = ident.responder()
    host.receive(client_hello)
    with pytest.raises(TunnelError, match="unexpected TEXT while await_finished"):
        host.receive(record)


def test_finished_is_required_before_the_host_sends() -> None:
    ident = identity("a")
    viewer, host = TunnelInitiator(ident.host_id), ident.responder()
    host.receive(viewer.start())
    with pytest.raises(LocalProtocolError, match="cannot send TEXT while await_finished"):
        host.send("hello")
    viewer.receive(host.data_to_send()[0])
    assert isinstance(host.receive(viewer.data_to_send()[0]), Established)
    assert viewer.receive(host.send("hello")) == Message("hello")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="13 symbols"):
        TunnelInitiator("ABCD")
    with pytest.raises(ValueError, match="SHA256"):
        TunnelInitiator(identity("a").host_id, pin="MD5:xx")
    with pytest.raises(ValueError, match="32 bytes"):
        TunnelInitiator(identity("a").host_id, random=b"short")


def test_the_other_valid_signature_of_the_same_handshake_is_refused() -> None:
    """ECDSA's (r, n - s) twin would let a relay alter a ServerHello and keep it valid."""
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    ident = identity("a")
    viewer = TunnelInitiator(ident.host_id)
    genuine = parse_server_hello(_answer(viewer, ident.responder()))
    r, s = genuine.signature[:32], int.from_bytes(genuine.signature[32:], "big")
    assert s <= order // 2
    twin = r + (order - s).to_bytes(32, "big")
    with pytest.raises(HostIdentityError, match="signature"):
        viewer.receive(dataclasses.replace(genuine, signature=twin).encode())


def test_a_certificate_with_an_impossible_version_is_refused_cleanly() -> None:
    # Found by the atheris harness: cryptography raises InvalidVersion, which is no
    # ValueError, for a version field of 10; it escaped the certificate check.
    from rdesk.tunnel.errors import HostIdentityError
    from rdesk.tunnel.keys import certificate_key

    der = identity("host").cert_der
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2 (X.509 v3)
    assert v3 in der
    bad = der.replace(v3, bytes.fromhex("a00302010a"), 1)
    with pytest.raises(HostIdentityError):
        certificate_key(bad)
