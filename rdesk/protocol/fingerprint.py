"""Host key fingerprints, in the form OpenSSH prints them (``SHA256:<base64>``).

A viewer pins the host's **public key**: :func:`key_fingerprint` is SHA-256 of the
certificate's DER SubjectPublicKeyInfo, what ``curl --pinnedpubkey sha256//...`` and HPKP pin,
so a certificate re-issued for the same key keeps every pin. :func:`fingerprint` is SHA-256 of
the whole certificate: what browsers show (Chromium's certificate viewer, Firefox's page info,
``openssl x509 -fingerprint -sha256``; :func:`fingerprint_hex` renders it that way), what
known_hosts entries written before key pins hold (:func:`pin_matches` still accepts them), and
what relay proofs bind.
"""

import base64
import hashlib
import hmac

__all__ = [
    "MAX_CERTIFICATE_DER",
    "certificate_spki",
    "fingerprint",
    "fingerprint_hex",
    "key_fingerprint",
    "pin_matches",
]

#: Largest certificate :func:`certificate_spki` parses (a host's is about 600 bytes).
MAX_CERTIFICATE_DER = 16384


def _b64_sha256(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def fingerprint(cert_der: bytes) -> str:
    """Return ``"SHA256:"`` + unpadded base64 of SHA-256 of a DER certificate."""
    return _b64_sha256(cert_der)


def _element(der: bytes, at: int, end: int) -> tuple[int, int, int]:
    """The DER element at ``at`` (within ``end``): ``(tag, content start, element end)``."""
    if at + 2 > end:
        raise ValueError("the certificate's DER is cut short")
    tag, length, start = der[at], der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        # Definite lengths of one to three bytes: a certificate here is at most 16 KiB.
        if count == 0 or count > 3 or start + count > end:
            raise ValueError("the certificate's DER has a bad length")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    if start + length > end:
        raise ValueError("the certificate's DER runs past its end")
    return tag, start, start + length


def certificate_spki(cert_der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of an X.509 certificate, as its bytes appear in it.

    Walks Certificate → tbsCertificate → [0] version, serial, signature, issuer, validity,
    subject → subjectPublicKeyInfo, and nothing more (the twin of ``certificateSpki`` in
    ``rdesk/web/core/tunnel.js``, which also requires a P-256 key). Any key type. Raises
    ``ValueError`` (one line) for anything that is not DER X.509 in that order.
    """
    if len(cert_der) > MAX_CERTIFICATE_DER:
        raise ValueError(f"the certificate exceeds {MAX_CERTIFICATE_DER} bytes")
    tag, start, end = _element(cert_der, 0, len(cert_der))
    if tag != 0x30 or end != len(cert_der):
        raise ValueError("the certificate is not one DER SEQUENCE")
    tag, at, tbs_end = _element(cert_der, start, end)
    if tag != 0x30:
        raise ValueError("the certificate has no tbsCertificate")
    tag, _, field_end = _element(cert_der, at, tbs_end)
    if tag == 0xA0:  # the explicit [0] version
        at = field_end
    for expected in (0x02, 0x30, 0x30, 0x30, 0x30):  # serial, signature, issuer, validity, subject
        tag, _, field_end = _element(cert_der, at, tbs_end)
        if tag != expected:
            raise ValueError("the certificate's fields are not in X.509 order")
        at = field_end
    tag, _, spki_end = _element(cert_der, at, tbs_end)
    if tag != 0x30:
        raise ValueError("the certificate has no SubjectPublicKeyInfo")
    return cert_der[at:spki_end]


def key_fingerprint(cert_der: bytes) -> str:
    """``"SHA256:"`` + unpadded base64 of SHA-256 of the certificate's SubjectPublicKeyInfo:
    the host key's pin. ``ValueError`` if ``cert_der`` is not a certificate."""
    return _b64_sha256(certificate_spki(cert_der))


def pin_matches(pin: str, cert_der: bytes) -> str | None:
    """Which fingerprint of ``cert_der`` the canonical ``pin`` is: ``"key"`` (a key pin),
    ``"certificate"`` (an older certificate pin, still honoured) or ``None``.

    Both comparisons always run, in constant time. ``ValueError`` if ``cert_der`` is not a
    certificate.
    """
    key = hmac.compare_digest(pin.encode(), key_fingerprint(cert_der).encode())
    cert = hmac.compare_digest(pin.encode(), fingerprint(cert_der).encode())
    return "key" if key else "certificate" if cert else None


def fingerprint_hex(fp: str) -> str:
    """Render ``"SHA256:<base64>"`` as colon-separated upper-case hex bytes (``"AB:12:..."``).

    Raises ``ValueError`` if ``fp`` is not a SHA-256 fingerprint as :func:`fingerprint`
    writes it.
    """
    prefix = "SHA256:"
    if not fp.startswith(prefix):
        raise ValueError("not a SHA256: fingerprint")
    body = fp[len(prefix) :]
    try:
        digest = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:
        raise ValueError("fingerprint is not valid base64") from None
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError("fingerprint is not 32 bytes")
    return ":".join(f"{b:02X}" for b in digest)
