"""Host key fingerprints, in the form OpenSSH prints them (``SHA256:<base64>``).

Browsers show the same SHA-256 as hex bytes instead (Chromium's certificate viewer, Firefox's
page info, ``openssl x509 -fingerprint -sha256``): :func:`fingerprint_hex` renders a
fingerprint that way so a person can compare it with what the browser shows.
"""

import base64
import hashlib

__all__ = ["fingerprint", "fingerprint_hex"]


def fingerprint(cert_der: bytes) -> str:
    """Return ``"SHA256:"`` + unpadded base64 of SHA-256 of a DER certificate."""
    digest = hashlib.sha256(cert_der).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


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
