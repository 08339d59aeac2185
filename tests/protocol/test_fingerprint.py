"""Key pins: SHA-256 of the certificate's SubjectPublicKeyInfo, read out of the DER by the
stdlib walker, equal to what ``cryptography`` and ``curl --pinnedpubkey`` compute; certificate
pins still recognised; every malformed certificate one ValueError."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.protocol.fingerprint import (
    certificate_spki,
    fingerprint,
    key_fingerprint,
    pin_matches,
)


def _certificate(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, name: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _spki(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
])
def test_the_spki_walked_out_of_the_der_is_the_keys(make: object) -> None:
    key = make()  # type: ignore[operator]
    der = _certificate(key, "host.example")
    assert certificate_spki(der) == _spki(key)
    # curl --pinnedpubkey sha256//BASE64 (padded) names the same digest.
    digest = hashlib.sha256(_spki(key)).digest()
    assert key_fingerprint(der) == "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def test_a_reissued_certificate_keeps_the_key_pin_not_the_certificate_pin() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first, second = _certificate(key, "a.example"), _certificate(key, "a.example")
    other = _certificate(ec.generate_private_key(ec.SECP256R1()), "a.example")
    assert first != second and fingerprint(first) != fingerprint(second)
    assert key_fingerprint(first) == key_fingerprint(second) != key_fingerprint(other)
    assert pin_matches(key_fingerprint(first), second) == "key"
    assert pin_matches(fingerprint(first), first) == "certificate"  # an older pin
    assert pin_matches(fingerprint(first), second) is None
    assert pin_matches(key_fingerprint(first), other) is None


def test_malformed_certificates_are_one_value_error() -> None:
    der = _certificate(ec.generate_private_key(ec.SECP256R1()), "a.example")
    for bad in (b"", b"\x30", der[:-1], der + b"\x00", b"\x31" + der[1:], b"\x30\x84" + der[2:],
                bytes(20000)):
        with pytest.raises(ValueError):
            certificate_spki(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700), st.integers(min_value=0, max_value=699))
def test_cut_or_mangled_der_never_escapes_as_another_error(junk: bytes, at: int) -> None:
    der = _certificate(ec.generate_private_key(ec.SECP256R1()), "a.example")
    for data in (junk, der[:at], der[:at] + junk):
        try:
            spki = certificate_spki(data)
        except ValueError:
            continue
        assert spki[0] == 0x30 and spki in data
