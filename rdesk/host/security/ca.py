"""A small certificate authority for viewer (client) certificates.

``rdesk certs init`` creates it; ``rdesk certs issue NAME --role control|view`` signs a viewer
certificate; ``rdesk certs revoke NAME`` revokes one; ``rdesk host --require-client-cert``
admits only viewers presenting a valid, unrevoked certificate of this CA, with the role the
certificate names (:class:`~rdesk.host.security.clientcerts.ClientCertPolicy`).

Layout of the CA directory (default ``<config-dir>/ca/``, mode 0700)::

    ca.crt            the CA certificate (EC P-256, self-signed, 10 years, pathlen 0)
    ca.key            its private key, mode 0600 — never copy it anywhere
    issued/NAME.crt   every certificate issued, by viewer name
    revoked.txt       one revoked serial per line: "<hex serial> <name> <ISO date>"
    crl.pem           the same list as a CRL signed by the CA (rewritten on every change)

A viewer certificate is EC P-256, valid :data:`DEFAULT_DAYS` days, with
``CN=<NAME>``, ``OU=rdesk-role:<role>`` (:data:`ROLE_PREFIX`) and the ``clientAuth`` extended
key usage; it is not a CA. The role lives in the subject's organizationalUnitName so
``openssl x509 -noout -subject`` shows it plainly; a certificate without exactly one such OU
grants nothing.

Every failure a user can cause raises :class:`CAError` whose ``str()`` is one line.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rdesk.common.files import atomic_write

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "CRL_FILE",
    "DEFAULT_DAYS",
    "REVOKED_FILE",
    "ROLES",
    "ROLE_PREFIX",
    "CAError",
    "IssuedCert",
    "default_ca_dir",
    "now_utc",
    "init_ca",
    "issue",
    "list_issued",
    "load_ca",
    "revoke",
    "revoked_serials",
    "role_of",
]

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
ISSUED_DIR = "issued"
REVOKED_FILE = "revoked.txt"
CRL_FILE = "crl.pem"
ROLE_PREFIX = "rdesk-role:"
ROLES = ("control", "view")
CA_DAYS = 3650
DEFAULT_DAYS = 825
_BACKDATE = datetime.timedelta(hours=1)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class CAError(Exception):
    """The CA could not be created, read or used; ``str()`` is one line."""


def default_ca_dir(config_dir: Path) -> Path:
    return Path(config_dir) / "ca"


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        atomic_write(path, data, mode)
    except OSError as exc:
        raise CAError(f"cannot write {path}: {exc.strerror or exc}") from None


def _mkdir(path: Path) -> None:
    try:
        if not path.is_dir():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)
    except OSError as exc:
        raise CAError(f"cannot create directory {path}: {exc.strerror or exc}") from None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise CAError(
            f"invalid certificate name {name!r}: use 1-64 letters, digits, '.', '_' or '-'"
        )
    return name


def init_ca(ca_dir: Path, common_name: str = "rdesk viewer CA") -> Path:
    """Create the CA in *ca_dir*; return the CA certificate's path.

    Raises :class:`CAError` if a CA already exists there (it is never overwritten).
    """
    ca_dir = Path(ca_dir)
    if (ca_dir / CA_CERT).exists() or (ca_dir / CA_KEY).exists():
        raise CAError(f"a CA already exists in {ca_dir}; remove it first to start over")
    _mkdir(ca_dir)
    _mkdir(ca_dir / ISSUED_DIR)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = now_utc()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(ca_dir / CA_KEY, _pem_key(key), 0o600)
    _write(ca_dir / CA_CERT, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(ca_dir / REVOKED_FILE, b"", 0o644)
    _write_crl(ca_dir, cert, key, [])
    return ca_dir / CA_CERT


def load_ca(
    ca_dir: Path, *, need_key: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | None]:
    """The CA's certificate and, if ``need_key``, its private key (else ``None``)."""
    cert_path, key_path = Path(ca_dir) / CA_CERT, Path(ca_dir) / CA_KEY
    if not cert_path.exists():
        raise CAError(f"no CA in {ca_dir}: run `rdesk certs init` first")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CAError(f"cannot load CA certificate {cert_path}: {exc}") from None
    key = None
    if need_key:
        try:
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise CAError(f"cannot load CA key {key_path}: {exc}") from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise CAError(f"cannot load CA key {key_path}: not an EC key")
        key = loaded
    return cert, key


def issue(
    ca_dir: Path, name: str, role: str, out_dir: Path, *, days: int = DEFAULT_DAYS
) -> tuple[Path, Path]:
    """Issue a viewer certificate; write ``out_dir/NAME.crt`` and ``out_dir/NAME.key`` (0600)
    and keep a copy of the certificate in ``issued/``. Return ``(cert_path, key_path)``.

    Refuses to overwrite an unrevoked certificate of the same name or existing output files.
    """
    check_name(name)
    if role not in ROLES:
        raise CAError(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    ca_dir = Path(ca_dir)
    ca_cert, ca_key = load_ca(ca_dir, need_key=True)
    assert ca_key is not None
    record = ca_dir / ISSUED_DIR / f"{name}.crt"
    if record.exists():
        old = x509.load_pem_x509_certificate(record.read_bytes())
        if old.serial_number not in revoked_serials(ca_dir):
            raise CAError(f"a certificate named {name!r} exists; revoke it first")
    out_dir = Path(out_dir)
    cert_path, key_path = out_dir / f"{name}.crt", out_dir / f"{name}.key"
    for path in (cert_path, key_path):
        if path.exists():
            raise CAError(f"{path} exists; choose another --out or remove it")
    _mkdir(out_dir)
    _mkdir(ca_dir / ISSUED_DIR)
    key = ec.generate_private_key(ec.SECP256R1())
    now = now_utc()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_PREFIX + role),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    _write(key_path, _pem_key(key), 0o600)
    _write(cert_path, pem, 0o644)
    _write(record, pem, 0o644)
    return cert_path, key_path


def _revoked_lines(ca_dir: Path) -> list[str]:
    try:
        text = (Path(ca_dir) / REVOKED_FILE).read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CAError(f"cannot read {Path(ca_dir) / REVOKED_FILE}: {exc.strerror}") from None
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def revoked_serials(ca_dir: Path) -> set[int]:
    """The serials ``revoked.txt`` lists."""
    serials = set()
    for line in _revoked_lines(ca_dir):
        try:
            serials.add(int(line.split()[0], 16))
        except ValueError:
            raise CAError(f"{Path(ca_dir) / REVOKED_FILE}: bad line {line[:40]!r}") from None
    return serials


def _write_crl(
    ca_dir: Path, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, serials: list[int]
) -> None:
    now = now_utc()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - _BACKDATE)
        .next_update(now + datetime.timedelta(days=CA_DAYS))
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    _write(Path(ca_dir) / CRL_FILE, crl.public_bytes(serialization.Encoding.PEM), 0o644)


def revoke(ca_dir: Path, name: str) -> int:
    """Revoke the certificate issued as *name*; return its serial. Idempotent."""
    check_name(name)
    ca_dir = Path(ca_dir)
    ca_cert, ca_key = load_ca(ca_dir, need_key=True)
    assert ca_key is not None
    record = ca_dir / ISSUED_DIR / f"{name}.crt"
    try:
        cert = x509.load_pem_x509_certificate(record.read_bytes())
    except FileNotFoundError:
        raise CAError(f"no certificate named {name!r} was issued by {ca_dir}") from None
    except (OSError, ValueError) as exc:
        raise CAError(f"cannot load {record}: {exc}") from None
    serials = revoked_serials(ca_dir)
    if cert.serial_number not in serials:
        lines = _revoked_lines(ca_dir)
        lines.append(f"{cert.serial_number:x} {name} {now_utc().date().isoformat()}")
        _write(ca_dir / REVOKED_FILE, ("\n".join(lines) + "\n").encode(), 0o644)
        serials.add(cert.serial_number)
    _write_crl(ca_dir, ca_cert, ca_key, sorted(serials))
    return int(cert.serial_number)


@dataclasses.dataclass(frozen=True)
class IssuedCert:
    name: str
    role: str | None
    serial: int
    not_after: datetime.datetime
    revoked: bool

    @property
    def status(self) -> str:
        if self.revoked:
            return "revoked"
        return "expired" if self.not_after < now_utc() else "valid"


def list_issued(ca_dir: Path) -> list[IssuedCert]:
    """Every certificate in ``issued/``, sorted by name."""
    ca_dir = Path(ca_dir)
    load_ca(ca_dir, need_key=False)
    revoked = revoked_serials(ca_dir)
    result = []
    for path in sorted((ca_dir / ISSUED_DIR).glob("*.crt")):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            continue
        result.append(
            IssuedCert(
                path.stem, role_of(cert), cert.serial_number, cert.not_valid_after_utc,
                cert.serial_number in revoked,
            )
        )
    return result


def role_of(cert: x509.Certificate) -> str | None:
    """The role a certificate names in its one ``OU=rdesk-role:<role>``; ``None`` if not exactly
    one valid role."""
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    roles = [
        str(a.value)[len(ROLE_PREFIX):] for a in units if str(a.value).startswith(ROLE_PREFIX)
    ]
    if len(roles) != 1 or roles[0] not in ROLES:
        return None
    return roles[0]
