"""The host's TLS identity and the TLS contexts both ends use.

The host owns a self-signed ECDSA P-256 certificate, created on first run in its configuration
directory. Viewers do not verify it against a CA; they pin the SHA-256 fingerprint of its public
key (the SubjectPublicKeyInfo, :func:`host_key_fingerprint`), the way OpenSSH pins host keys
(trust on first use, see :mod:`rdesk.client.known_hosts`), so a certificate re-issued for the
same key keeps every pin. The fingerprint is printed in OpenSSH's format,
``SHA256:<unpadded base64>``, so a user can compare what the host shows with what the viewer
shows; browsers show the whole certificate's SHA-256 instead (:func:`certificate_fingerprint`).

Every failure a user can cause (a missing, unreadable or mismatched file, a directory that cannot
be written) raises :class:`TLSSetupError` whose ``str()`` is one line, fit to print after
``rdesk: error:``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rdesk.common.files import atomic_write
from rdesk.common.tls import TLS12_CIPHERS, harden
from rdesk.protocol.fingerprint import fingerprint, key_fingerprint

__all__ = [
    "CERT_FILENAME",
    "KEY_FILENAME",
    "TLS12_CIPHERS",
    "TLSSetupError",
    "certificate_fingerprint",
    "host_key_fingerprint",

    "ensure_host_certificate",
    "fingerprint",
    "server_ssl_context",
]

CERT_FILENAME = "host.crt"
KEY_FILENAME = "host.key"

_DNS_LABEL = re.compile(r"\*|[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_VALIDITY = datetime.timedelta(days=3650)
#: Backdate ``notBefore`` a little so a viewer whose clock lags the host's accepts the cert.
_BACKDATE = datetime.timedelta(days=1)


class TLSSetupError(Exception):
    """The host certificate or key could not be created, read or used.

    ``str(exc)`` is a single line naming the file and the reason.
    """


def _one_line(text: object) -> str:
    """Collapse *text* to a single line (OpenSSL reasons sometimes span several)."""
    return " ".join(str(text).split())


def _os_reason(exc: OSError) -> str:
    return _one_line(exc.strerror or exc)


def _subject_alt_names(hostnames: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    automatic = ["localhost", socket.gethostname(), "127.0.0.1", "::1"]
    for index, raw in enumerate([*automatic, *hostnames]):
        name = raw.strip().strip("[]")
        if not name:
            continue
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            try:
                # SAN dNSName is ASCII: internationalised names go in as IDNA A-labels
                key = name.lower().rstrip(".").encode("idna").decode("ascii")
                if len(key) > 253 or not all(map(_DNS_LABEL.fullmatch, key.split("."))):
                    raise UnicodeError(key)
            except UnicodeError:
                if index < len(automatic):
                    continue  # an odd local hostname is not worth failing for
                raise TLSSetupError(f"invalid host name for the certificate: {raw!r}") from None
            if key not in seen:
                seen.add(key)
                names.append(x509.DNSName(key))
        else:
            key = str(ip)
            if key not in seen:
                seen.add(key)
                names.append(x509.IPAddress(ip))
    return names


def _make_certificate(key: ec.EllipticCurvePrivateKey, sans: list[x509.GeneralName]) -> bytes:
    hostname = socket.gethostname() or "localhost"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"rdesk host {hostname}"[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_existing_key(key_path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        data = key_path.read_bytes()
    except OSError as exc:
        raise TLSSetupError(f"cannot read key {key_path}: {_os_reason(exc)}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TLSSetupError(f"cannot load key {key_path}: {_one_line(exc)}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TLSSetupError(f"cannot load key {key_path}: not an ECDSA key")
    return key


def ensure_host_certificate(
    config_dir: Path, hostnames: list[str] | None = None
) -> tuple[Path, Path]:
    """Return ``(cert_path, key_path)`` of the host identity in *config_dir*, creating it if needed.

    Contract:

    * If ``config_dir/host.crt`` and ``config_dir/host.key`` both exist they are returned as they
      are (not parsed here; :func:`server_ssl_context` reports problems with them).
    * Otherwise *config_dir* is created (mode 0700 when this call creates it), a new ECDSA P-256
      key is written to ``host.key`` with mode 0600 and a self-signed certificate for it to
      ``host.crt`` with mode 0644. The certificate's CN is ``rdesk host <hostname>``; its SAN
      lists ``localhost``, this machine's hostname, 127.0.0.1, ::1 and every entry of
      *hostnames* (IP literals become IP SANs); it is valid for ten years, is not a CA, and is
      for TLS server authentication only.
    * If the key exists without the certificate (a crash between the two writes), a certificate
      is made for the existing key, so the host keeps its identity's key.
    * If the certificate exists without the key, the identity is lost; rather than silently
      replacing it this raises :class:`TLSSetupError` asking the user to remove the certificate.
    * Each file is written atomically: a reader sees either no file or the complete file.

    Raises :class:`TLSSetupError` (one line) on any file system error and for an entry of
    *hostnames* that is neither an IP address nor a valid (IDNA-encodable) DNS name.
    """
    config_dir = Path(config_dir)
    cert_path = config_dir / CERT_FILENAME
    key_path = config_dir / KEY_FILENAME
    try:
        have_cert, have_key = cert_path.exists(), key_path.exists()
    except OSError as exc:
        raise TLSSetupError(f"cannot access {config_dir}: {_os_reason(exc)}") from None
    if have_cert and have_key:
        return cert_path, key_path
    if have_cert:
        raise TLSSetupError(
            f"found {cert_path} but its key {key_path} is missing; "
            f"remove {cert_path} to create a new host identity (viewers will see a new fingerprint)"
        )
    sans = _subject_alt_names(list(hostnames or []))  # may raise: before anything is written
    try:
        if not config_dir.is_dir():
            config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(config_dir, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise TLSSetupError(f"cannot create directory {config_dir}: {_os_reason(exc)}") from None

    if have_key:
        key = _load_existing_key(key_path)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            atomic_write(key_path, key_pem, 0o600)
        except OSError as exc:
            raise TLSSetupError(f"cannot write key {key_path}: {_os_reason(exc)}") from None
    cert_pem = _make_certificate(key, sans)
    try:
        atomic_write(cert_path, cert_pem, 0o644)
    except OSError as exc:
        raise TLSSetupError(f"cannot write certificate {cert_path}: {_os_reason(exc)}") from None
    return cert_path, key_path


def _certificate_der(cert_path: Path) -> bytes:
    try:
        data = Path(cert_path).read_bytes()
    except OSError as exc:
        raise TLSSetupError(f"cannot read certificate {cert_path}: {_os_reason(exc)}") from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise TLSSetupError(f"cannot load certificate {cert_path}: {_one_line(exc)}") from None
    return cert.public_bytes(serialization.Encoding.DER)


def certificate_fingerprint(cert_path: Path) -> str:
    """Load the PEM certificate at *cert_path* and return its :func:`fingerprint` (of the
    whole certificate: what a browser shows).

    Raises :class:`TLSSetupError` (one line) if the file cannot be read or parsed.
    """
    return fingerprint(_certificate_der(cert_path))


def host_key_fingerprint(cert_path: Path) -> str:
    """The :func:`~rdesk.protocol.fingerprint.key_fingerprint` of the PEM certificate at
    *cert_path*: what viewers pin. :class:`TLSSetupError` as :func:`certificate_fingerprint`.
    """
    return key_fingerprint(_certificate_der(cert_path))


def server_ssl_context(cert: Path, key: Path, *, allow_tls12: bool = False) -> ssl.SSLContext:
    """Return a server-side context presenting *cert* with private *key*.

    Contract: TLS 1.3 only by default. With *allow_tls12*, TLS 1.2 is accepted too, but only with
    ECDHE key exchange and AEAD ciphers (:data:`TLS12_CIPHERS`). Compression and renegotiation are
    disabled. No client certificate is requested (viewers authenticate with a password inside the
    encrypted channel).

    Raises :class:`TLSSetupError` with a one-line message naming the file when the certificate or
    key is missing, unreadable, malformed, or the two do not match.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2 if allow_tls12 else ssl.TLSVersion.TLSv1_3
    harden(ctx)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # Parse both files first so that the error names the file at fault and says why;
    # load_cert_chain's own errors ("PEM lib") say neither.
    for what, path in (("certificate", cert), ("key", key)):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise TLSSetupError(f"cannot load {what} {path}: {_os_reason(exc)}") from None
        try:
            if what == "certificate":
                x509.load_pem_x509_certificate(data)
            else:
                serialization.load_pem_private_key(data, password=None)
        except Exception as exc:  # ValueError, TypeError (encrypted), UnsupportedAlgorithm
            # cryptography's messages run to several sentences; the first says what is wrong
            reason = _one_line(exc).split(". ")[0].rstrip(".") or type(exc).__name__
            raise TLSSetupError(f"cannot load {what} {path}: {reason}") from None
    try:
        ctx.load_cert_chain(certfile=os.fspath(cert), keyfile=os.fspath(key))
    except ssl.SSLError as exc:
        reason = exc.reason or exc.strerror or str(exc)
        if exc.reason == "KEY_VALUES_MISMATCH":
            msg = f"cannot load certificate {cert}: it does not match the key {key}"
        else:
            msg = f"cannot load certificate {cert} with key {key}: {_one_line(reason)}"
        raise TLSSetupError(msg) from None
    except OSError as exc:
        raise TLSSetupError(f"cannot load certificate {cert}: {_os_reason(exc)}") from None
    return ctx


