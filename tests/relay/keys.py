"""Host keys for the relay tests: a real P-256 key, its SPKI and its ID."""

from __future__ import annotations

import dataclasses
import functools

from cryptography.hazmat.primitives.asymmetric import ec

from rdesk.protocol.hostid import host_id
from rdesk.relay import proof


@dataclasses.dataclass(frozen=True)
class HostKey:
    key: ec.EllipticCurvePrivateKey
    spki: bytes
    id: str

    def sign(self, message: bytes) -> bytes:
        return proof.sign(self.key, message)


def new_host_key() -> HostKey:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = proof.spki_of_key(key.public_key())
    return HostKey(key, spki, host_id(spki))


@functools.cache
def shared_host_key(n: int = 0) -> HostKey:
    """One key per ``n`` for the whole run (hypothesis examples must not each make a key)."""
    return new_host_key()
