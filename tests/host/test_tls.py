"""Tests for rdesk.host.security.tls: host identity creation, fingerprints and TLS contexts."""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from rdesk.client.tls import ClientTLSError, client_ssl_context
from rdesk.host.security.tls import (
    TLSSetupError,
    certificate_fingerprint,
    ensure_host_certificate,
    server_ssl_context,
)
from rdesk.protocol.fingerprint import fingerprint

FP_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_host_certificate(
        tmp_path_factory.mktemp("id") / "cfg", ["rdesk.example", "10.1.2.3"]
    )


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str | None = None
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Run a TLS handshake between two in-memory SSLObjects; raise the first SSLError."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    done = {"s": False, "c": False}
    for _ in range(50):
        for name, obj in (("c", client), ("s", server)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if c_out.pending:
            s_in.write(c_out.read())
        if s_out.pending:
            c_in.write(s_out.read())
        if all(done.values()) and not c_out.pending and not s_out.pending:
            return server, client
    raise AssertionError("handshake did not finish")


def test_creates_files_with_safe_modes(tmp_path: Path) -> None:
    cfg = tmp_path / "a" / "rdesk"
    cert, key = ensure_host_certificate(cfg)
    assert (cert, key) == (cfg / "host.crt", cfg / "host.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o700
    assert sorted(p.name for p in cfg.iterdir()) == ["host.crt", "host.key"]  # no temp files


def test_reused_on_second_call(tmp_path: Path) -> None:
    cert, key = ensure_host_certificate(tmp_path)
    before = (cert.read_bytes(), key.read_bytes())
    assert ensure_host_certificate(tmp_path) == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == before


def test_certificate_contents(identity: tuple[Path, Path]) -> None:
    cert = x509.load_pem_x509_certificate(identity[0].read_bytes())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert str(cn).startswith("rdesk host ")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    assert "localhost" in dns and "rdesk.example" in dns
    assert {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.1.2.3")} <= set(ips)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 3650 <= days <= 3652


def test_fingerprint_format(identity: tuple[Path, Path]) -> None:
    fp = certificate_fingerprint(identity[0])
    assert FP_RE.match(fp)
    # OpenSSH's example: sha256 of the empty string
    assert fingerprint(b"") == "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"


def test_key_without_cert_keeps_key(tmp_path: Path) -> None:
    cert, key = ensure_host_certificate(tmp_path)
    key_bytes = key.read_bytes()
    cert.unlink()
    ensure_host_certificate(tmp_path)
    assert key.read_bytes() == key_bytes
    server_ssl_context(cert, key)  # matches


def test_cert_without_key_refused(tmp_path: Path) -> None:
    _, key = ensure_host_certificate(tmp_path)
    key.unlink()
    with pytest.raises(TLSSetupError) as err:
        ensure_host_certificate(tmp_path)
    assert "\n" not in str(err.value) and "host.key" in str(err.value)


def test_tls13_handshake_and_fingerprint_pinning(identity: tuple[Path, Path]) -> None:
    server, client = _handshake(server_ssl_context(*identity), client_ssl_context())
    assert client.version() == "TLSv1.3" == server.version()
    der = client.getpeercert(binary_form=True)
    assert der is not None
    assert fingerprint(der) == certificate_fingerprint(identity[0])


def test_tls12_client_refused_by_default(identity: tuple[Path, Path]) -> None:
    old = client_ssl_context()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        _handshake(server_ssl_context(*identity), old)


def test_tls12_allowed_on_request_with_aead(identity: tuple[Path, Path]) -> None:
    old = client_ssl_context()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    _, client = _handshake(server_ssl_context(*identity, allow_tls12=True), old)
    assert client.version() == "TLSv1.2"
    cipher = client.cipher()
    assert cipher is not None
    assert cipher[0].startswith("ECDHE-ECDSA-") and ("GCM" in cipher[0] or "CHACHA" in cipher[0])


def test_tls12_weak_ciphers_refused(identity: tuple[Path, Path]) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.set_ciphers("ECDHE-ECDSA-AES128-SHA")  # CBC, no AEAD
    with pytest.raises(ssl.SSLError):
        _handshake(server_ssl_context(*identity, allow_tls12=True), old)


def test_client_with_cafile_verifies(identity: tuple[Path, Path], tmp_path: Path) -> None:
    ctx = client_ssl_context(cafile=identity[0])
    _, client = _handshake(server_ssl_context(*identity), ctx, server_hostname="localhost")
    assert client.version() == "TLSv1.3"
    other_cert, _ = ensure_host_certificate(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(
            server_ssl_context(*identity), client_ssl_context(cafile=other_cert), "localhost"
        )


def test_client_bad_cafile(tmp_path: Path) -> None:
    with pytest.raises(ClientTLSError) as err:
        client_ssl_context(cafile=tmp_path / "nope.pem")
    assert "\n" not in str(err.value)


def _one_line(exc: BaseException, *needles: str) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg
    for needle in needles:
        assert needle in msg


def test_missing_key(tmp_path: Path, identity: tuple[Path, Path]) -> None:
    with pytest.raises(TLSSetupError) as err:
        server_ssl_context(identity[0], tmp_path / "host.key")
    _one_line(err.value, "host.key", "No such file")


def test_garbage_key(tmp_path: Path, identity: tuple[Path, Path]) -> None:
    bad = tmp_path / "host.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(TLSSetupError) as err:
        server_ssl_context(identity[0], bad)
    _one_line(err.value, "cannot load key", "host.key")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_key(tmp_path: Path) -> None:
    cert, key = ensure_host_certificate(tmp_path)
    key.chmod(0)
    with pytest.raises(TLSSetupError) as err:
        server_ssl_context(cert, key)
    _one_line(err.value, "host.key", "Permission denied")


def test_mismatched_key(tmp_path: Path, identity: tuple[Path, Path]) -> None:
    _, other_key = ensure_host_certificate(tmp_path)
    with pytest.raises(TLSSetupError) as err:
        server_ssl_context(identity[0], other_key)
    _one_line(err.value, "does not match")


def test_unwritable_config_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TLSSetupError) as err:
        ensure_host_certificate(blocker / "cfg")
    _one_line(err.value, "cannot create directory")


def test_certificate_fingerprint_errors(tmp_path: Path) -> None:
    with pytest.raises(TLSSetupError):
        certificate_fingerprint(tmp_path / "missing.crt")
    junk = tmp_path / "junk.crt"
    junk.write_text("junk")
    with pytest.raises(TLSSetupError) as err:
        certificate_fingerprint(junk)
    _one_line(err.value, "junk.crt")


def test_invalid_hostname_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(TLSSetupError) as err:
        ensure_host_certificate(tmp_path / "cfg", ["bad\x00name"])
    _one_line(err.value, "invalid host name")
    assert not (tmp_path / "cfg").exists()


def test_idna_hostname(tmp_path: Path) -> None:
    cert, _ = ensure_host_certificate(tmp_path, ["b\u00fccher.example"])
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "xn--bcher-kva.example" in san.get_values_for_type(x509.DNSName)
