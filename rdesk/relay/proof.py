"""The host's proofs that it owns the key its ID is the hash of.

A host proves ownership twice: registering on ``/host`` it signs the relay's random challenge,
and opening ``/data`` for a rendezvous it signs the session. Both signatures are ECDSA P-256
with SHA-256 over a **domain-separated** input that also binds the relay's TLS certificate
fingerprint as the host saw it, so a proof made for one relay (or one purpose) is worthless to
another relay (or the other purpose). Signatures are raw ``r || s`` (64 bytes), the form
WebCrypto uses, so a browser could speak this too.

Every function is pure; verification never raises for a bad signature, it returns ``False``.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from rdesk.protocol.hostid import host_id

__all__ = [
    "data_input",
    "key_matches_id",
    "load_spki",
    "register_input",
    "sign",
    "spki_of_certificate",
    "spki_of_key",
    "verify",
]

_REGISTER = b"rdesk relay register v1"
_DATA = b"rdesk relay data v1"
_HALF = 32  # bytes of r and of s for P-256


def _framed(*parts: bytes) -> bytes:
    # Length-prefixed, so no two different tuples of parts give the same input.
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def register_input(nonce: bytes, relay_fingerprint: str, claimed_id: str) -> bytes:
    """What a host signs to answer a registration challenge."""
    return _framed(_REGISTER, nonce, relay_fingerprint.encode(), claimed_id.encode())


def data_input(session: str, relay_fingerprint: str, claimed_id: str) -> bytes:
    """What a host signs in the first message of a ``/data`` connection."""
    return _framed(_DATA, session.encode(), relay_fingerprint.encode(), claimed_id.encode())


def sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA-SHA256 signature of ``message``, raw ``r || s``."""
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(_HALF, "big") + s.to_bytes(_HALF, "big")


def load_spki(spki_der: bytes) -> ec.EllipticCurvePublicKey | None:
    """The P-256 public key in ``spki_der``, or ``None`` if it is not one."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return None
    # Only the canonical encoding: the ID is a hash of these exact bytes.
    if spki_of_key(key) != spki_der:
        return None
    return key


def verify(spki_der: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` (raw ``r || s``) over ``message`` was made by ``spki_der``'s key."""
    key = load_spki(spki_der)
    if key is None or len(signature) != 2 * _HALF:
        return False
    r = int.from_bytes(signature[:_HALF], "big")
    s = int.from_bytes(signature[_HALF:], "big")
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def spki_of_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """The SubjectPublicKeyInfo DER of a public key."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_of_certificate(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo DER of a DER certificate (``ValueError`` if it is not one)."""
    cert = x509.load_der_x509_certificate(cert_der)
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches_id(spki_der: bytes, claimed_id: str) -> bool:
    """Whether ``claimed_id`` (canonical form) is the ID of ``spki_der``."""
    return host_id(spki_der) == claimed_id
