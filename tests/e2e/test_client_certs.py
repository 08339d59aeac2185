"""--require-client-cert end to end: only certificates of the host's CA get in, with the role
written in the certificate; a revoked one is refused (issue 8)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from rdesk.client.connection import AuthenticationFailed, ConnectError, connect
from rdesk.client.tls import client_ssl_context
from rdesk.host.security.ca import init_ca, issue, revoke
from rdesk.host.security.clientcerts import ClientCertPolicy
from tests.e2e.conftest import RunningHost
from tests.xserver import Xvfb


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    ca_dir = tmp_path / "ca"
    init_ca(ca_dir)
    return ca_dir


async def _connect_with(host: RunningHost, cert: tuple[Path, Path] | None):  # type: ignore[no-untyped-def]
    ctx = client_ssl_context(cert=cert[0], key=cert[1]) if cert else client_ssl_context()
    # No password is given: with certificates the host never asks for one.
    return await connect(host.url, lambda: pytest.fail("password asked"), known_hosts=None,
                         pinned=host.fingerprint, ssl_context=ctx)


async def test_certificates_admit_with_their_role(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], ca: Path, tmp_path: Path
) -> None:
    host = host_factory(xvfb.display, cert_policy=ClientCertPolicy(ca), require_client_cert=True)
    admin = issue(ca, "admin", "control", tmp_path / "out")
    watcher = issue(ca, "watcher", "view", tmp_path / "out")
    conn = await _connect_with(host, admin)
    assert conn.role == "control"
    await conn.wait_exact(20)
    await conn.close()
    conn = await _connect_with(host, watcher)
    assert conn.role == "view"
    await conn.close()

    revoke(ca, "watcher")
    with pytest.raises((AuthenticationFailed, ConnectError)):
        await _connect_with(host, watcher)
    with pytest.raises(ConnectError):  # no certificate: the TLS handshake itself fails
        await _connect_with(host, None)


async def test_foreign_ca_is_refused(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], ca: Path, tmp_path: Path
) -> None:
    host = host_factory(xvfb.display, cert_policy=ClientCertPolicy(ca), require_client_cert=True)
    other = tmp_path / "other-ca"
    init_ca(other)
    stranger = issue(other, "stranger", "control", tmp_path / "out")
    with pytest.raises(ConnectError):
        await _connect_with(host, stranger)
    assert not host.server.viewers


def test_cli_certs_and_host_flag(rdesk_cli: Callable[..., subprocess.CompletedProcess[str]],
                                 tmp_path: Path) -> None:
    result = rdesk_cli("certs", "init")
    assert result.returncode == 0, result.stderr
    result = rdesk_cli("certs", "issue", "alice", "--role", "view", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "alice.key").stat().st_mode & 0o777 == 0o600
    result = rdesk_cli("certs", "list")
    assert "alice" in result.stdout and "view" in result.stdout
    result = rdesk_cli("certs", "issue", "bob", "--role", "root", "--out", str(tmp_path))
    assert result.returncode == 2  # a bad role is a usage error
