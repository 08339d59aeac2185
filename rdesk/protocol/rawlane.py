"""The raw lane's only plaintext: the preamble a peer sends on the relay's splice port, and the
relay's status answer (docs/relay.md, "The raw lane").

On the raw lane the viewer and the host each open a plain TCP connection to the relay's splice
port and send one fixed-size **preamble**: :data:`MAGIC` (8 bytes), the version (1 byte) and
the one-time ticket the relay gave that peer over its TLS websocket (:data:`TICKET_BYTES`).
The relay answers each with one **status** byte: :data:`GO` (the host: wait for the viewer's
TLS ClientHello; the viewer: start TLS now, the host is at the other end) or :data:`REFUSED`
followed by one line of at most :data:`MAX_REASON` bytes of UTF-8 and ``\\n``, then closes.
Everything after ``GO`` is the host's own TLS session, end to end; the relay copies it.

Pure: bytes in, values out; :class:`RawLaneError` (one line) for anything else.
"""

from __future__ import annotations

__all__ = [
    "GO",
    "MAGIC",
    "MAX_REASON",
    "PREAMBLE_BYTES",
    "RAW_VERSION",
    "REFUSED",
    "TICKET_BYTES",
    "RawLaneError",
    "check_status",
    "parse_preamble",
    "parse_refusal",
    "preamble",
    "refusal",
]

#: The first bytes of every preamble: not TLS (0x16), not HTTP, so a misdirected peer is
#: told apart at once.
MAGIC = b"rdeskraw"
#: Version of the raw lane's preamble.
RAW_VERSION = 1
#: Bytes of a ticket (random, one-time).
TICKET_BYTES = 32
#: Bytes of the whole preamble: magic, version, ticket.
PREAMBLE_BYTES = len(MAGIC) + 1 + TICKET_BYTES
#: The relay's status bytes.
GO = b"\x00"
REFUSED = b"\x01"
#: Longest refusal line, in bytes (without the newline).
MAX_REASON = 120


class RawLaneError(ValueError):
    """A preamble or status that is not one; ``str()`` is one line."""


def preamble(ticket: bytes) -> bytes:
    """The preamble carrying ``ticket``."""
    if len(ticket) != TICKET_BYTES:
        raise RawLaneError(f"a ticket is {TICKET_BYTES} bytes, not {len(ticket)}")
    return MAGIC + bytes([RAW_VERSION]) + ticket


def parse_preamble(data: bytes) -> bytes:
    """The ticket of a complete preamble (exactly :data:`PREAMBLE_BYTES` bytes)."""
    if len(data) != PREAMBLE_BYTES:
        raise RawLaneError(f"a preamble is {PREAMBLE_BYTES} bytes, not {len(data)}")
    if not data.startswith(MAGIC):
        raise RawLaneError("not a raw lane preamble")
    if data[len(MAGIC)] != RAW_VERSION:
        raise RawLaneError(f"raw lane version {data[len(MAGIC)]} is not supported")
    return data[len(MAGIC) + 1:]


def refusal(reason: str) -> bytes:
    """The refusal status: :data:`REFUSED`, the reason on one line (cut to
    :data:`MAX_REASON` bytes), ``\\n``."""
    line = " ".join(reason.split()).encode(errors="replace")[:MAX_REASON].decode(errors="ignore")
    return REFUSED + line.encode() + b"\n"


def parse_refusal(data: bytes) -> str:
    """The reason of a refusal status's line (what follows :data:`REFUSED`), shown safely."""
    line = data.split(b"\n", 1)[0][:MAX_REASON].decode(errors="replace")
    return "".join(c if c.isprintable() else "?" for c in line) or "refused"


def check_status(status: bytes, line: bytes) -> None:
    """Nothing if ``status`` (the relay's first byte) is :data:`GO`; else
    :class:`RawLaneError` saying why, with the relay's ``line`` (what it sent after
    :data:`REFUSED`) shown safely. An empty ``status``: the relay closed without answering;
    any other byte: not a raw lane relay."""
    if status == GO:
        return
    if not status:
        raise RawLaneError("the relay closed the connection")
    if status != REFUSED:
        raise RawLaneError(f"not a raw lane status: byte 0x{status[0]:02x}")
    raise RawLaneError(f"the relay refused it: {parse_refusal(line)}")
