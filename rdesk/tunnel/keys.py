"""The tunnel's cryptography: ephemeral ECDH, the transcript signature, the key schedule, records.

Only primitives WebCrypto also has: ECDH and ECDSA on P-256, SHA-256, HKDF-SHA256, AES-256-GCM,
so a browser viewer can run the same tunnel.

- transcript signature: the host signs, with its long-term key (its TLS key), with
  ECDSA-SHA256, ``SIGNATURE_CONTEXT || SHA-256(ClientHello || ServerHello up to the signature)``.
  The context string keeps a tunnel signature from being usable as any other signature made with
  the same key (TLS's CertificateVerify, the relay registration proof), and the hash covers both
  randoms and both ephemeral keys, so a hello from another session never verifies;
- keys: ``HKDF-SHA256(ikm = ECDH secret, salt = SHA-256(ClientHello || ServerHello),
  info = KEY_INFO)`` → 88 bytes: viewer→host key 32, host→viewer key 32, viewer→host IV 12,
  host→viewer IV 12;
- records: AES-256-GCM, nonce = IV xor the 64-bit record sequence number (big-endian, in the
  last 8 bytes), associated data = the record's type byte. Each direction has its own key and
  sequence, so a record cannot be replayed, reordered, reflected or moved between directions.
"""

from __future__ import annotations

import dataclasses
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rdesk.protocol.errors import CloseCode
from rdesk.protocol.fingerprint import key_fingerprint, pin_matches
from rdesk.protocol.hostid import host_id
from rdesk.tunnel.errors import HostIdentityError, TunnelError
from rdesk.tunnel.wire import POINT_SIZE, SIGNATURE_SIZE, TAG_SIZE, Kind

__all__ = [
    "KEY_INFO",
    "MAX_SEALED_BYTES",
    "SIGNATURE_CONTEXT",
    "Keys",
    "RecordCipher",
    "certificate_host_id",
    "certificate_key",
    "derive_keys",
    "ecdh",
    "new_ephemeral",
    "sign_transcript",
    "spki",
    "transcript_hash",
    "verify_transcript",
]

SIGNATURE_CONTEXT = b"rdesk tunnel v1: host signature over the handshake\x00"
KEY_INFO = b"rdesk tunnel v1: record keys"
#: Bytes one key may seal before the tunnel must be reopened (well inside AES-GCM's bounds for
#: a deterministic nonce: a long session at a high rate reconnects rather than wearing a key).
MAX_SEALED_BYTES = 1 << 38
_KEY, _IV = 32, 12
_CURVE = ec.SECP256R1()
#: The order of P-256's base point.
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The SubjectPublicKeyInfo DER of a key (named curve, uncompressed point): what IDs hash."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate_key(cert_der: bytes) -> ec.EllipticCurvePublicKey:
    """The P-256 key of a host certificate; anything else is a :class:`HostIdentityError`."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        # InvalidVersion is no ValueError: a version field the fuzzer set to 10 escaped.
        raise HostIdentityError("the host certificate is not valid DER X.509") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _CURVE.name:
        raise HostIdentityError("the host certificate's key is not ECDSA P-256")
    return key


def check_host(cert_der: bytes, expected_id: str,
               pin: str | None) -> tuple[ec.EllipticCurvePublicKey, str]:
    """The key of a host certificate and its fingerprint, once the key hashes to
    ``expected_id`` and matches ``pin`` (if any: a key's or, from before key pins, the
    certificate's); :class:`HostIdentityError` with one line otherwise. The end-to-end
    tunnel and the raw lane check the host with this, before any credential is sent."""
    key = certificate_key(cert_der)
    offered = host_id(spki(key))
    if offered != expected_id:
        raise HostIdentityError(f"the host's key has ID {offered}, not {expected_id}: refusing it")
    try:
        offered_fp = key_fingerprint(cert_der)
    except ValueError as exc:
        raise HostIdentityError(str(exc)) from None
    if pin is not None and pin_matches(pin, cert_der) is None:
        raise HostIdentityError(f"the host's key {offered_fp} is not the pinned {pin}")
    return key, offered_fp


def certificate_host_id(cert_der: bytes) -> str:
    """The host ID of the key in a certificate (``XXXX-XXXX-XXXXX``)."""
    return host_id(spki(certificate_key(cert_der)))


def new_ephemeral() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A fresh ephemeral key pair and its public point, uncompressed."""
    private = ec.generate_private_key(_CURVE)
    return private, point_of(private)


def point_of(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def ecdh(private: ec.EllipticCurvePrivateKey, peer_point: bytes) -> bytes:
    """The shared secret with a peer's ephemeral point, which must be on the curve."""
    if len(peer_point) != POINT_SIZE or peer_point[0] != 0x04:
        raise TunnelError("ephemeral key is not an uncompressed P-256 point")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, peer_point)
    except ValueError:
        raise TunnelError("ephemeral key is not a point on P-256") from None
    return private.exchange(ec.ECDH(), peer)


def transcript_hash(*messages: bytes) -> bytes:
    """SHA-256 over the handshake messages, in order, as sent."""
    digest = hashlib.sha256()
    for message in messages:
        digest.update(message)
    return digest.digest()


def sign_transcript(private_key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """The host's signature over a transcript hash, as ``r || s`` (64 bytes), with low ``s``.

    ``(r, s)`` and ``(r, n - s)`` are both valid ECDSA signatures; always writing the lower one
    (and refusing the other) means no one in between can alter a ServerHello and keep it valid.
    """
    der = private_key.sign(SIGNATURE_CONTEXT + digest, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    s = min(s, _ORDER - s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_transcript(
    public_key: ec.EllipticCurvePublicKey, digest: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` (``r || s``, low ``s``) is the key's signature over the hash."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _ORDER and 0 < s <= _ORDER // 2):
        return False
    try:
        public_key.verify(
            encode_dss_signature(r, s), SIGNATURE_CONTEXT + digest, ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Keys:
    """The record keys of one tunnel, per direction."""

    viewer_key: bytes
    host_key: bytes
    viewer_iv: bytes
    host_iv: bytes


def derive_keys(shared: bytes, transcript: bytes) -> Keys:
    """The key schedule: HKDF-SHA256 over the ECDH secret, salted with the transcript hash."""
    okm = HKDF(hashes.SHA256(), 2 * _KEY + 2 * _IV, salt=transcript, info=KEY_INFO).derive(shared)
    return Keys(
        okm[:_KEY], okm[_KEY : 2 * _KEY], okm[2 * _KEY : 2 * _KEY + _IV], okm[2 * _KEY + _IV :]
    )


class RecordCipher:
    """One direction's AEAD: seals or opens records strictly in sequence.

    A cipher is used for one direction only, by one end for sealing and by the other for
    opening. Opening fails on the first record that is not exactly the next one sealed (forged,
    replayed, reordered, truncated, from the other direction); the caller must then close.
    """

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._aead = AESGCM(key)
        self._iv = int.from_bytes(iv, "big")
        self.sequence = 0
        self.bytes = 0

    def _nonce(self, size: int) -> bytes:
        if self.sequence >= 1 << 64:
            raise TunnelError("record sequence exhausted", CloseCode.GOING_AWAY)
        if self.bytes + size > MAX_SEALED_BYTES:
            raise TunnelError("tunnel key used up; reconnect", CloseCode.GOING_AWAY)
        nonce = (self._iv ^ self.sequence).to_bytes(_IV, "big")
        self.sequence += 1
        self.bytes += size
        return nonce

    def seal(self, kind: Kind, plaintext: bytes) -> bytes:
        """The record (type byte, ciphertext, tag) for the next sequence number."""
        header = bytes([kind])
        return header + self._aead.encrypt(self._nonce(len(plaintext)), plaintext, header)

    def open(self, kind: Kind, sealed: bytes) -> bytes:
        """The plaintext of the next record, or :class:`TunnelError` if it is not authentic."""
        header = bytes([kind])
        try:
            return self._aead.decrypt(self._nonce(len(sealed) - TAG_SIZE), sealed, header)
        except InvalidTag:
            raise TunnelError(
                "record failed authentication (forged, replayed, reordered or cut)"
            ) from None
