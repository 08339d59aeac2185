"""Host identities made the way a host makes its own (``ensure_host_certificate``), and a
helper that runs a tunnel handshake between two sans-I/O ends with nothing in between."""

from __future__ import annotations

import dataclasses
import tempfile
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rdesk.host.security.tls import ensure_host_certificate
from rdesk.tunnel import Established, TunnelInitiator, TunnelResponder
from rdesk.tunnel.keys import certificate_host_id

__all__ = ["Identity", "handshake", "identity", "pair"]


@dataclasses.dataclass(frozen=True)
class Identity:
    """A host's long-term key, its certificate, and the ID they give it."""

    key: ec.EllipticCurvePrivateKey
    cert_der: bytes
    host_id: str
    cert_path: Path
    key_path: Path

    def responder(self, **kwargs: object) -> TunnelResponder:
        return TunnelResponder(self.key, self.cert_der, **kwargs)  # type: ignore[arg-type]


@cache
def identity(name: str) -> Identity:
    """The host identity called ``name``, created once per test run in a private directory."""
    directory = Path(tempfile.mkdtemp(prefix=f"rdesk-tunnel-{name}-"))
    cert_path, key_path = ensure_host_certificate(directory)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert_der = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    return Identity(key, cert_der, certificate_host_id(cert_der), cert_path, key_path)


def handshake(viewer: TunnelInitiator, host: TunnelResponder) -> Established:
    """Run the handshake directly between the two ends; return the viewer's Established."""
    assert host.receive(viewer.start()) is None
    (server_hello,) = host.data_to_send()
    event = viewer.receive(server_hello)
    assert isinstance(event, Established)
    (finished,) = viewer.data_to_send()
    assert isinstance(host.receive(finished), Established)
    return event


def pair(name: str = "a", pin: str | None = None) -> tuple[TunnelInitiator, TunnelResponder]:
    """A viewer and host with an open tunnel between them."""
    ident = identity(name)
    viewer, host = TunnelInitiator(ident.host_id, pin), ident.responder()
    handshake(viewer, host)
    return viewer, host
