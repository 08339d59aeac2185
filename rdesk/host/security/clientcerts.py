"""The host's side of client certificates: demand them in TLS and read the role they grant.

The CA itself (its directory, issuing, revoking) is :mod:`rdesk.host.security.ca`.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rdesk.host.security.ca import (
    CA_CERT,
    CRL_FILE,
    REVOKED_FILE,
    CAError,
    load_ca,
    now_utc,
    revoked_serials,
    role_of,
)

__all__ = ["ClientCertPolicy"]


class ClientCertPolicy:
    """The host's side: require viewer certificates of the CA in *ca_dir* and read their role.

    * :meth:`ssl_context_hook` makes a server context demand a certificate chaining to the CA
      and check the CA's CRL (so a revoked certificate fails the TLS handshake itself).
    * :meth:`role_for` re-checks the peer certificate after the handshake — issuer signature,
      validity, ``clientAuth``, not revoked (``revoked.txt`` is re-read when it changes, so a
      revocation applies to new connections without restarting the host) — and returns its
      role, or ``None``.
    """

    def __init__(self, ca_dir: Path) -> None:
        self.ca_dir = Path(ca_dir)
        self.ca_cert, _ = load_ca(self.ca_dir, need_key=False)
        self._revoked: set[int] = set()
        self._revoked_stamp: tuple[int, int] | None = None
        self._load_revoked()

    def _load_revoked(self) -> set[int]:
        path = self.ca_dir / REVOKED_FILE
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._revoked_stamp:
            self._revoked = revoked_serials(self.ca_dir)
            self._revoked_stamp = stamp
        return self._revoked

    def ssl_context_hook(self, ctx: ssl.SSLContext) -> None:
        """Make *ctx* (a server context) require a client certificate from this CA."""
        try:
            ctx.load_verify_locations(cafile=os.fspath(self.ca_dir / CA_CERT))
            crl = self.ca_dir / CRL_FILE
            if crl.exists():
                ctx.load_verify_locations(cafile=os.fspath(crl))
                ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        except (OSError, ssl.SSLError) as exc:
            raise CAError(f"cannot load the CA of {self.ca_dir}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED

    def subject(self, peer_cert_der: bytes) -> tuple[str, int] | None:
        """``(common name, serial)`` of a peer certificate, for the audit log."""
        try:
            cert = x509.load_der_x509_certificate(peer_cert_der)
        except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
            return None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return (str(names[0].value) if names else "", int(cert.serial_number))

    def role_for(self, peer_cert_der: bytes | None) -> str | None:
        """The role the certificate grants, or ``None`` if it grants nothing."""
        if not peer_cert_der:
            return None
        try:
            cert = x509.load_der_x509_certificate(peer_cert_der)
            if cert.issuer != self.ca_cert.subject:
                return None
            public = self.ca_cert.public_key()
            assert isinstance(public, ec.EllipticCurvePublicKey)
            hash_alg = cert.signature_hash_algorithm
            if hash_alg is None:
                return None
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_alg))
            now = now_utc()
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                return None
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
                return None
            basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            if basic.ca:
                return None
            if cert.serial_number in self._load_revoked():
                return None
        except (ValueError, InvalidSignature, x509.ExtensionNotFound, x509.InvalidVersion,
                AssertionError, CAError):
            return None
        return role_of(cert)
