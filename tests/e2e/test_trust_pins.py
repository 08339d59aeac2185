"""Trust that survives certificate renewal, through the real ``rdesk host`` command: key (SPKI)
pins kept across a certificate re-issued for the same key, known_hosts entries of certificate
fingerprints migrated, and ``--ca-file`` trusting a CA-signed host across a renewal with a new
key, refusing one an unrelated CA signed (one line, exit status 5)."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rdesk.host.security.tls import certificate_fingerprint, host_key_fingerprint
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_foundation import _free_port
from tests.xserver import Xvfb

pytestmark = pytest.mark.timeout(240)
Cli = Callable[..., subprocess.CompletedProcess[str]]


@contextmanager
def _host(tmp_path: Path, display: str, port: int, *extra: str) -> Iterator[dict[str, str]]:
    """A real ``rdesk host`` on 127.0.0.1:``port``; yields its banner's lines by label."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "host-cfg"), "host",
         "--display", display, "--bind", "127.0.0.1", "--port", str(port), "--capture", "mss",
         "--password-file", str(tmp_path / "pw"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    banner: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            label, _, value = line.strip().partition(": ")
            banner[label] = value.strip()
            if label == "browser":
                break
        else:
            raise AssertionError(proc.stderr.read() if proc.stderr else "host did not start")
        yield banner
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def _snapshot(rdesk_cli: Cli, tmp_path: Path, port: int, *extra: str
              ) -> subprocess.CompletedProcess[str]:
    return rdesk_cli("snapshot", f"wss://127.0.0.1:{port}", "--password-file",
                     str(tmp_path / "pw"), "-o", str(tmp_path / "shot.png"), *extra)


def test_a_certificate_reissued_for_the_same_key_keeps_the_pins(
    xvfb: Xvfb, rdesk_cli: Cli, tmp_path: Path,
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    port = _free_port()
    cert = tmp_path / "host-cfg" / "host.crt"
    known = tmp_path / "viewer-config" / "known_hosts"
    with _host(tmp_path, xvfb.display, port) as first:
        pin = first["fingerprint"]
        assert pin == host_key_fingerprint(cert) != certificate_fingerprint(cert)
        old_certificate_fp = certificate_fingerprint(cert)
        result = _snapshot(rdesk_cli, tmp_path, port, "--accept-new")
        assert result.returncode == 0, result.stderr
        assert known.read_text() == f"127.0.0.1:{port} {pin}\n"
    # The certificate is re-issued: the host keeps host.key and makes a new host.crt for it.
    cert.unlink()
    with _host(tmp_path, xvfb.display, port) as second:
        assert certificate_fingerprint(cert) != old_certificate_fp  # another certificate...
        assert second["fingerprint"] == pin  # ...and the same key: the banner says the same
        assert second["browser"] != first["browser"]  # what a browser shows is the certificate
        result = _snapshot(rdesk_cli, tmp_path, port)  # known_hosts, no --accept-new
        assert result.returncode == 0, result.stderr
        result = _snapshot(rdesk_cli, tmp_path, port, "--fingerprint", pin, "--json")
        assert result.returncode == 0 and f'"fingerprint": "{pin}"' in result.stdout

        # An entry written before key pins (the old certificate's fingerprint) is a changed
        # key now: that certificate is gone. The current certificate's is migrated.
        known.write_text(f"# kept\n127.0.0.1:{port} {old_certificate_fp}\n")
        result = _snapshot(rdesk_cli, tmp_path, port)
        assert result.returncode == 4 and "CHANGED" in result.stderr  # exits.HOST_KEY_CHANGED
        known.write_text(f"# kept\n127.0.0.1:{port} {certificate_fingerprint(cert)}\n")
        result = _snapshot(rdesk_cli, tmp_path, port)
        assert result.returncode == 0, result.stderr
        assert known.read_text() == f"# kept\n127.0.0.1:{port} {pin}\n"
        assert known.stat().st_mode & 0o777 == 0o600
        # An old certificate pin given on the command line is still honoured.
        result = _snapshot(rdesk_cli, tmp_path, port, "--fingerprint",
                           certificate_fingerprint(cert))
        assert result.returncode == 0, result.stderr


# --- a CA-signed host --------------------------------------------------------------------------


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _ca(directory: Path, label: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name(label)).issuer_name(_name(label))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{label}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _leaf(directory: Path, label: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
          ) -> tuple[str, str]:
    """A fresh key and a certificate for 127.0.0.1 the CA signed, as ``--tls-cert/--tls-key``."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name("rdesk test host"))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{label}.crt", directory / f"{label}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def test_ca_file_trusts_a_ca_signed_host_across_a_new_key_and_refuses_another_ca(
    xvfb: Xvfb, rdesk_cli: Cli, tmp_path: Path,
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    pki = tmp_path / "pki"
    ca = _ca(pki, "ca")
    _ca(pki, "unrelated")
    port = _free_port()
    known = tmp_path / "viewer-config" / "known_hosts"
    pins = []
    for renewal in ("first", "renewed"):  # a renewal with a new key, as Let's Encrypt does
        cert, key = _leaf(pki, renewal, ca)
        with _host(tmp_path, xvfb.display, port, "--tls-cert", cert, "--tls-key", key) as banner:
            pins.append(banner["fingerprint"])
            result = _snapshot(rdesk_cli, tmp_path, port, "--ca-file", str(pki / "ca.pem"))
            assert result.returncode == 0, result.stderr
            if renewal == "renewed":
                # Another CA: refused in the TLS handshake, one line, exit status 5.
                result = _snapshot(rdesk_cli, tmp_path, port,
                                   "--ca-file", str(pki / "unrelated.pem"))
                lines = result.stderr.strip().splitlines()
                assert result.returncode == 5, result.stderr  # exits.HOST_KEY_UNKNOWN
                assert len(lines) == 1 and lines[0].startswith("rdesk: error: 127.0.0.1:")
                assert "not trusted by the CA file" in lines[0]
                assert "nothing was sent" in lines[0]
                # Without the CA file the renewed host is just an unknown key.
                result = _snapshot(rdesk_cli, tmp_path, port)
                assert result.returncode == 5, result.stderr
    assert pins[0] != pins[1]  # the key did change
    assert not known.exists()  # the CA stood in for the pin: nothing remembered
