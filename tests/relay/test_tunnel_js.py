"""The browser's tunnel (``rdesk/web/core/tunnel.js``) under Node against the Python tunnel.

``tunnel_vectors.py`` records a handshake and records made by ``rdesk/tunnel/`` with a fixed
viewer key and random; ``tunnel_vectors.mjs`` makes the JavaScript end produce and accept the
same bytes and refuse the hostile ones; ``relaysocket.test.mjs`` runs the page's socket
(``core/relaysocket.js``) over a fake WebSocket on the same vectors. The vectors' check runs in
Chromium too, in ``tests/e2e/test_relay_browser.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from rdesk.tunnel import TunnelInitiator
from rdesk.tunnel.errors import HostIdentityError
from rdesk.tunnel.keys import SIGNATURE_CONTEXT, certificate_key, transcript_hash
from rdesk.tunnel.wire import parse_server_hello
from tests.relay.tunnel_vectors import VIEWER_RANDOM, VIEWER_SCALAR, make_vectors

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")


def test_the_high_s_vector_is_a_valid_ecdsa_signature_only_the_rule_refuses() -> None:
    """So a JavaScript end without the low-s rule would fail the Node test."""
    vectors = make_vectors()
    data = bytes.fromhex(vectors["refused"]["high_s"])
    hello = parse_server_hello(data)
    digest = transcript_hash(bytes.fromhex(vectors["client_hello"]), hello.signed_part())
    r = int.from_bytes(hello.signature[:32], "big")
    s = int.from_bytes(hello.signature[32:], "big")
    key = certificate_key(hello.certificate)
    try:
        key.verify(encode_dss_signature(r, s), SIGNATURE_CONTEXT + digest,
                   ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:  # pragma: no cover - the vector would be worthless
        pytest.fail("the high-s signature should verify as plain ECDSA")
    ephemeral = ec.derive_private_key(VIEWER_SCALAR, ec.SECP256R1())
    viewer = TunnelInitiator(vectors["host_id"], ephemeral=ephemeral, random=VIEWER_RANDOM)
    viewer.start()
    with pytest.raises(HostIdentityError, match="signature"):
        viewer.receive(data)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("suite", ["tunnel_js.test.mjs", "relaysocket.test.mjs"])
def test_browser_tunnel_under_node_matches_python(tmp_path: Path, suite: str) -> None:
    assert NODE is not None
    path = tmp_path / "vectors.json"
    path.write_text(json.dumps(make_vectors()))
    result = subprocess.run(
        [NODE, "--experimental-detect-module", "--test", str(HERE / suite)],
        cwd=HERE, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "RDESK_TUNNEL_VECTORS": str(path)},
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "# fail 0" in report and "# pass 0" not in report, report
