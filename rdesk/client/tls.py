"""The viewer's TLS context: no CA checks by default, because hosts are pinned by fingerprint."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from rdesk.common.tls import pinning_client_context

__all__ = ["client_ssl_context", "ClientTLSError"]


class ClientTLSError(Exception):
    """A CA file or client certificate could not be loaded; ``str()`` is one line."""


def client_ssl_context(
    cafile: Path | None = None, *, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """Return a client-side TLS context for a viewer.

    **Without** ``cafile`` (the normal case) the context verifies **nothing**: hosts use
    self-signed certificates trusted by fingerprint pinning instead. The caller MUST, after
    the handshake and BEFORE sending anything (above all a credential), fingerprint the peer
    certificate and check it with :func:`rdesk.client.known_hosts.verify_host_key`, closing
    the connection if that fails — :func:`rdesk.client.connection.connect` does.

    **With** ``cafile`` the peer is verified normally (chain to ``cafile``, host name).
    TLS 1.2 is the minimum offered (the host decides whether it requires 1.3); compression
    and renegotiation are off.

    With ``cert`` (and ``key``, unless the key is in the same PEM file) the viewer presents
    that client certificate (``rdesk certs issue``) to hosts that require one.
    """
    ctx = pinning_client_context()
    if cert is not None:
        try:
            ctx.load_cert_chain(
                certfile=os.fspath(cert), keyfile=os.fspath(key) if key is not None else None
            )
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise ClientTLSError(f"cannot load client certificate {cert}: {reason}") from None
    elif key is not None:
        raise ClientTLSError("a client key was given without its certificate")
    if cafile is None:
        return ctx
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=os.fspath(cafile))
    except (OSError, ssl.SSLError) as exc:
        raise ClientTLSError(f"cannot load CA file {cafile}: {exc}") from None
    return ctx
