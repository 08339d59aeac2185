"""Host key fingerprints, in the form OpenSSH prints them (``SHA256:<base64>``)."""

import base64
import hashlib

__all__ = ["fingerprint"]


def fingerprint(cert_der: bytes) -> str:
    """Return ``"SHA256:"`` + unpadded base64 of SHA-256 of a DER certificate."""
    digest = hashlib.sha256(cert_der).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
