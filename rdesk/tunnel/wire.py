"""The tunnel's messages on the wire, with a size limit on every field.

Every tunnel message is one binary websocket message whose first byte says what it is:

- ``ClientHello`` (viewer → host), 112 bytes:
  ``0x01 | version u8 | random 32 | ephemeral P-256 point 65 (uncompressed) | host ID 13``
  (the ID the viewer asked the relay for, canonical symbols without dashes);
- ``ServerHello`` (host → viewer), 165 bytes + certificate:
  ``0x02 | version u8 | random 32 | ephemeral point 65 | cert length u16 | certificate DER |
  signature 64`` (ECDSA P-256 ``r || s``, the form WebCrypto produces and verifies);
- a record: ``type u8 | AES-256-GCM ciphertext | tag 16``, with the 64-bit sequence number
  implicit in the nonce and the type byte as associated data. Types: Finished (the viewer's
  first record, key confirmation), text, binary, and close (``code u16 | reason UTF-8``).

This module only frames and unframes; it knows no keys. Anything malformed raises
:class:`~rdesk.tunnel.errors.TunnelError`.
"""

from __future__ import annotations

import dataclasses
import enum
import struct

from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode
from rdesk.protocol.hostid import ID_SYMBOLS, parse_host_id
from rdesk.tunnel.errors import TunnelError

__all__ = [
    "CLIENT_HELLO_SIZE",
    "MAX_CERTIFICATE",
    "MAX_CLOSE_REASON",
    "MAX_RECORD_PAYLOAD",
    "MAX_WIRE_MESSAGE",
    "POINT_SIZE",
    "RECORD_KINDS",
    "RANDOM_SIZE",
    "RECORD_OVERHEAD",
    "SIGNATURE_SIZE",
    "TAG_SIZE",
    "TUNNEL_VERSION",
    "ClientHello",
    "Kind",
    "ServerHello",
    "decode_close",
    "encode_close",
    "parse_client_hello",
    "parse_record",
    "parse_server_hello",
]

TUNNEL_VERSION = 1
RANDOM_SIZE = 32
#: An uncompressed P-256 point: 0x04, X, Y.
POINT_SIZE = 65
#: ECDSA P-256 signature as ``r || s``.
SIGNATURE_SIZE = 64
TAG_SIZE = 16
#: A host certificate is about 500 bytes; this leaves room for long names, not for abuse.
MAX_CERTIFICATE = 8192
#: A websocket close reason is at most 123 bytes; the tunnel's close record carries one.
MAX_CLOSE_REASON = 123
#: The largest message a record carries: the largest rdesk protocol message.
MAX_RECORD_PAYLOAD = limits.MAX_MESSAGE
RECORD_OVERHEAD = 1 + TAG_SIZE
CLIENT_HELLO_SIZE = 1 + 1 + RANDOM_SIZE + POINT_SIZE + ID_SYMBOLS
_SERVER_HELLO_FIXED = 1 + 1 + RANDOM_SIZE + POINT_SIZE + 2 + SIGNATURE_SIZE
#: The largest websocket message either end sends or accepts (configure the websocket and the
#: relay's splice with at least this).
MAX_WIRE_MESSAGE = max(MAX_RECORD_PAYLOAD + RECORD_OVERHEAD, _SERVER_HELLO_FIXED + MAX_CERTIFICATE)


class Kind(enum.IntEnum):
    """The first byte of every tunnel message."""

    CLIENT_HELLO = 0x01
    SERVER_HELLO = 0x02
    FINISHED = 0x10
    TEXT = 0x11
    BINARY = 0x12
    CLOSE = 0x13


RECORD_KINDS = frozenset({Kind.FINISHED, Kind.TEXT, Kind.BINARY, Kind.CLOSE})


@dataclasses.dataclass(frozen=True)
class ClientHello:
    """The viewer's opening: a fresh ephemeral key and random, and the ID it wants."""

    version: int
    random: bytes
    ephemeral: bytes
    host_id: str

    def encode(self) -> bytes:
        return (
            bytes([Kind.CLIENT_HELLO, self.version]) + self.random + self.ephemeral
            + self.host_id.replace("-", "").encode("ascii")
        )


@dataclasses.dataclass(frozen=True)
class ServerHello:
    """The host's answer: its ephemeral key and random, its certificate, and a signature."""

    version: int
    random: bytes
    ephemeral: bytes
    certificate: bytes
    signature: bytes

    def signed_part(self) -> bytes:
        """The encoding up to (not including) the signature: what the signature covers."""
        return (
            bytes([Kind.SERVER_HELLO, self.version]) + self.random + self.ephemeral
            + struct.pack("!H", len(self.certificate)) + self.certificate
        )

    def encode(self) -> bytes:
        return self.signed_part() + self.signature


def _kind(data: bytes) -> int:
    if not data:
        raise TunnelError("empty tunnel message")
    if len(data) > MAX_WIRE_MESSAGE:
        raise TunnelError(
            f"tunnel message of {len(data)} bytes exceeds {MAX_WIRE_MESSAGE}", CloseCode.TOO_BIG
        )
    return data[0]


def _version(version: int) -> None:
    if version != TUNNEL_VERSION:
        raise TunnelError(
            f"peer speaks tunnel version {version}, this end {TUNNEL_VERSION}",
            CloseCode.VERSION_MISMATCH,
        )


def parse_client_hello(data: bytes) -> ClientHello:
    """Unframe a ClientHello (the ID is returned in canonical grouped form)."""
    if _kind(data) != Kind.CLIENT_HELLO:
        raise TunnelError(f"expected a ClientHello, got message type 0x{data[0]:02x}")
    if len(data) != CLIENT_HELLO_SIZE:
        raise TunnelError(f"ClientHello of {len(data)} bytes, not {CLIENT_HELLO_SIZE}")
    _version(data[1])
    at = 2
    random = data[at : at + RANDOM_SIZE]
    at += RANDOM_SIZE
    ephemeral = data[at : at + POINT_SIZE]
    at += POINT_SIZE
    raw_id = data[at:]
    try:
        ident = parse_host_id(raw_id.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise TunnelError("ClientHello carries a malformed host ID") from None
    if ident.replace("-", "").encode("ascii") != raw_id:
        raise TunnelError("ClientHello host ID is not in canonical form")
    return ClientHello(data[1], random, ephemeral, ident)


def parse_server_hello(data: bytes) -> ServerHello:
    """Unframe a ServerHello (nothing is verified here: see :mod:`rdesk.tunnel.machine`)."""
    if _kind(data) != Kind.SERVER_HELLO:
        raise TunnelError(f"expected a ServerHello, got message type 0x{data[0]:02x}")
    if len(data) < _SERVER_HELLO_FIXED:
        raise TunnelError(f"ServerHello of {len(data)} bytes is too short")
    _version(data[1])
    at = 2
    random = data[at : at + RANDOM_SIZE]
    at += RANDOM_SIZE
    ephemeral = data[at : at + POINT_SIZE]
    at += POINT_SIZE
    (cert_len,) = struct.unpack_from("!H", data, at)
    at += 2
    if cert_len == 0 or cert_len > MAX_CERTIFICATE:
        raise TunnelError(f"ServerHello certificate of {cert_len} bytes (1..{MAX_CERTIFICATE})")
    if len(data) != at + cert_len + SIGNATURE_SIZE:
        raise TunnelError("ServerHello length does not match its certificate length")
    certificate = data[at : at + cert_len]
    signature = data[at + cert_len :]
    return ServerHello(data[1], random, ephemeral, certificate, signature)


def parse_record(data: bytes) -> tuple[Kind, bytes]:
    """Split a record into its type and its ciphertext with tag (not yet authenticated)."""
    kind = _kind(data)
    if kind not in RECORD_KINDS:
        raise TunnelError(f"expected a record, got message type 0x{kind:02x}")
    if len(data) < RECORD_OVERHEAD:
        raise TunnelError(f"record of {len(data)} bytes is shorter than its tag")
    return Kind(kind), data[1:]


def encode_close(code: int, reason: str) -> bytes:
    """The plaintext of a close record; the reason is cut to fit, on a character boundary."""
    cut = reason.encode("utf-8")[:MAX_CLOSE_REASON].decode("utf-8", errors="ignore")
    return struct.pack("!H", code) + cut.encode("utf-8")


def decode_close(plaintext: bytes) -> tuple[int, str]:
    """The code and reason of an authenticated close record."""
    if len(plaintext) < 2 or len(plaintext) > 2 + MAX_CLOSE_REASON:
        raise TunnelError(f"close record of {len(plaintext)} bytes")
    (code,) = struct.unpack_from("!H", plaintext)
    if not 1000 <= code <= 4999:
        raise TunnelError(f"close code {code} out of range")
    try:
        reason = plaintext[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise TunnelError("close reason is not UTF-8") from None
    if "\n" in reason or "\r" in reason:
        raise TunnelError("close reason spans lines")
    return code, reason
