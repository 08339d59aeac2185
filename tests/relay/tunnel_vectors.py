"""Test vectors for the browser's tunnel (``rdesk/web/core/tunnel.js``), made by the Python one.

The viewer's ephemeral key and random are fixed (``TunnelInitiator``'s test hooks), so every
byte the viewer sends is determined: the JavaScript end, given the same key and random, must
produce exactly the same ClientHello, Finished and records, and must accept the host's
ServerHello and records that the Python responder produced. The negative vectors are
ServerHellos and records the JavaScript end must refuse, each for one stated reason.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from rdesk.protocol.fingerprint import fingerprint, key_fingerprint
from rdesk.tunnel import Established, TunnelInitiator
from rdesk.tunnel.keys import _ORDER, certificate_key, sign_transcript, spki, transcript_hash
from rdesk.tunnel.wire import parse_server_hello
from tests.tunnel.identities import identity

__all__ = ["make_vectors", "high_s"]

#: A fixed scalar for the viewer's ephemeral key: any value in [1, n) is a valid key.
VIEWER_SCALAR = 0x5EED_0F_7E57_0000_1111_2222_3333_4444_5555_6666_7777_8888_9999_AAAA_BBBB
VIEWER_RANDOM = bytes(range(32))
VIEWER_TEXTS = ['{"t":"auth","method":"password","secret":"hunter2"}', "é ✓ 🙂"]
VIEWER_BINARY = bytes(range(256)) * 3
HOST_TEXTS = ['{"t":"hello","protocol":"rdesk","version":1}', ""]
HOST_BINARY = b"\x89PNG\r\n\x1a\n" + bytes(100)


def _b64url(value: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).decode().rstrip("=")


def _jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = key.private_numbers()
    public = numbers.public_numbers
    return {"kty": "EC", "crv": "P-256", "d": _b64url(numbers.private_value),
            "x": _b64url(public.x), "y": _b64url(public.y), "ext": "true"}


def high_s(server_hello: bytes) -> bytes:
    """The same ServerHello with ``s`` replaced by ``n - s``: ECDSA-valid, refused by rule."""
    s = int.from_bytes(server_hello[-32:], "big")
    return server_hello[:-32] + (_ORDER - s).to_bytes(32, "big")


def _resigned(server_hello: bytes, client_hello: bytes, key: ec.EllipticCurvePrivateKey,
              cert_der: bytes) -> bytes:
    """The ServerHello with another certificate, honestly signed by that certificate's key."""
    hello = parse_server_hello(server_hello)
    unsigned = (
        server_hello[:2 + 32 + 65] + struct.pack("!H", len(cert_der)) + cert_der
    )
    assert hello.version == 1
    return unsigned + sign_transcript(key, transcript_hash(client_hello, unsigned))


def make_vectors() -> dict[str, Any]:
    """One handshake and its records, and what must be refused, as hex in a JSON-able dict."""
    host = identity("vectors")
    other = identity("vectors-other")
    ephemeral = ec.derive_private_key(VIEWER_SCALAR, ec.SECP256R1())
    viewer = TunnelInitiator(host.host_id, ephemeral=ephemeral, random=VIEWER_RANDOM)
    responder = host.responder()
    client_hello = viewer.start()
    assert responder.receive(client_hello) is None
    (server_hello,) = responder.data_to_send()
    established = viewer.receive(server_hello)
    assert isinstance(established, Established)
    (finished,) = viewer.data_to_send()
    assert isinstance(responder.receive(finished), Established)
    viewer_records = [
        {"text": text, "record": viewer.send(text).hex()} for text in VIEWER_TEXTS
    ] + [{"binary": VIEWER_BINARY.hex(), "record": viewer.send(VIEWER_BINARY).hex()}]
    host_records = [
        {"text": text, "record": responder.send(text).hex()} for text in HOST_TEXTS
    ] + [{"binary": HOST_BINARY.hex(), "record": responder.send(HOST_BINARY).hex()}]
    host_close = responder.close(4001, "bye ✓")
    assert host_close is not None
    tampered = bytearray.fromhex(host_records[0]["record"])
    tampered[5] ^= 1
    cut_cert = server_hello[: 2 + 32 + 65] + struct.pack("!H", 40) + host.cert_der[:40]
    cut_cert += server_hello[-64:]
    return {
        "viewer_jwk": _jwk(ephemeral),
        "viewer_random": VIEWER_RANDOM.hex(),
        "host_id": host.host_id,
        "typed_id": host.host_id.lower().replace("-", " ").replace("0", "o"),
        "pin": key_fingerprint(host.cert_der),
        "certificate_pin": fingerprint(host.cert_der),
        "other_pin": key_fingerprint(other.cert_der),
        "spki": spki(certificate_key(host.cert_der)).hex(),
        "client_hello": client_hello.hex(),
        "server_hello": server_hello.hex(),
        "finished": finished.hex(),
        "viewer_records": viewer_records,
        "host_records": host_records,
        "host_close": {"code": 4001, "reason": "bye ✓", "record": host_close.hex()},
        "refused": {
            "high_s": high_s(server_hello).hex(),
            "another_hosts_key": _resigned(
                server_hello, client_hello, other.key, other.cert_der
            ).hex(),
            "cut_certificate": cut_cert.hex(),
            "tampered_record": bytes(tampered).hex(),
        },
    }
