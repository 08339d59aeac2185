"""The viewer CA: issue, revoke, list; the host policy admits only valid certificates."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rdesk.client.tls import client_ssl_context
from rdesk.host.security import ca
from rdesk.host.security.clientcerts import ClientCertPolicy
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context


@pytest.fixture
def authority(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    ca.init_ca(directory)
    return directory


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


def test_layout_modes_and_roles(authority: Path, tmp_path: Path) -> None:
    assert stat.S_IMODE(os.stat(authority / ca.CA_KEY).st_mode) == 0o600
    crt, key = ca.issue(authority, "alice", "control", tmp_path / "out")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert (authority / "issued" / "alice.crt").exists()
    vcrt, _ = ca.issue(authority, "bob", "view", tmp_path / "out")
    policy = ClientCertPolicy(authority)
    assert policy.role_for(_der(crt)) == "control"
    assert policy.role_for(_der(vcrt)) == "view"
    assert policy.role_for(None) is None and policy.role_for(b"garbage") is None
    with pytest.raises(ca.CAError):
        ca.init_ca(authority)  # never overwritten
    with pytest.raises(ca.CAError):
        ca.issue(authority, "alice", "view", tmp_path / "other")  # not revoked yet
    with pytest.raises(ca.CAError):
        ca.issue(authority, "../evil", "view", tmp_path / "other")


def test_revocation_applies_without_restart(authority: Path, tmp_path: Path) -> None:
    crt, _ = ca.issue(authority, "carol", "control", tmp_path / "out")
    policy = ClientCertPolicy(authority)
    assert policy.role_for(_der(crt)) == "control"
    serial = ca.revoke(authority, "carol")
    assert ca.revoke(authority, "carol") == serial  # idempotent
    assert policy.role_for(_der(crt)) is None
    listed = {c.name: c.status for c in ca.list_issued(authority)}
    assert listed == {"carol": "revoked"}


def test_other_ca_and_host_certificate_grant_nothing(authority: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    ca.init_ca(other)
    crt, _ = ca.issue(other, "mallory", "control", tmp_path / "m")
    host_crt, _ = ensure_host_certificate(tmp_path / "host")
    policy = ClientCertPolicy(authority)
    assert policy.role_for(_der(crt)) is None
    assert policy.role_for(_der(host_crt)) is None


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> bytes | None:
    """One TLS handshake over a socket pair; the server's view of the client cert, or None."""
    a, b = socket.socketpair()
    result: list[bytes | None] = [None]

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as tls:
                result[0] = tls.getpeercert(binary_form=True)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname="localhost") as tls:
            tls.settimeout(10)
            tls.recv(2)  # TLS 1.3: the server's verdict arrives after the client's Finished
    except (ssl.SSLError, OSError):
        pass
    thread.join(10)
    return result[0]


def test_tls_handshake_requires_a_valid_certificate(authority: Path, tmp_path: Path) -> None:
    host_crt, host_key = ensure_host_certificate(tmp_path / "host")
    crt, key = ca.issue(authority, "dave", "view", tmp_path / "out")
    other = tmp_path / "other-ca"
    ca.init_ca(other)
    bad_crt, bad_key = ca.issue(other, "eve", "control", tmp_path / "bad")
    policy = ClientCertPolicy(authority)

    def server() -> ssl.SSLContext:
        ctx = server_ssl_context(host_crt, host_key)
        policy.ssl_context_hook(ctx)
        return ctx

    der = _handshake(server(), client_ssl_context(cert=crt, key=key))
    assert der is not None and policy.role_for(der) == "view"
    assert _handshake(server(), client_ssl_context()) is None
    assert _handshake(server(), client_ssl_context(cert=bad_crt, key=bad_key)) is None
    ca.revoke(authority, "dave")
    assert _handshake(server(), client_ssl_context(cert=crt, key=key)) is None  # CRL
