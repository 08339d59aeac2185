"""The TLS profile every rdesk endpoint uses, written once: host, viewers and the relay.

TLS 1.3 suites are all AEAD; where TLS 1.2 is allowed, only ECDHE key exchange with AEAD
ciphers is offered or accepted. Compression (CRIME) and renegotiation are off.
"""

from __future__ import annotations

import ssl

__all__ = ["TLS12_CIPHERS", "harden", "pinning_client_context"]

#: TLS 1.2 suites: ECDHE key exchange, AEAD only.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """Apply the profile to ``ctx`` (its minimum version is the caller's choice); returns it."""
    ctx.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.set_ciphers(TLS12_CIPHERS)
    return ctx


def pinning_client_context() -> ssl.SSLContext:
    """A client context that verifies **no** certificate chain: for peers trusted by pinning.

    The caller MUST fingerprint the peer's certificate after the handshake and check it
    against the pin (or trust it on first use, saying so) BEFORE sending anything that
    matters. TLS 1.2 is the lowest version offered, with the suites of :func:`harden`.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    harden(ctx)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
