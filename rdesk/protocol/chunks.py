"""Transfer chunks on the wire: the binary ``xfer_data`` message (kind 2).

docs/protocol.md ("The binary transfer chunk") is normative. A file's bytes travel raw, not as
base64 in JSON: base64 and JSON cost the host about half of its time per byte. Layout, all
integers unsigned big-endian::

    kind:u8 (=2) | reserved:u8 (=0) | reserved:u16 (=0) | id:u32 | offset:u64 | length:u32
    | payload (length bytes)

``offset`` is where the payload starts in the file; a receiver takes chunks in order only
(``offset`` equal to the bytes it has), so a duplicated, lost or reordered chunk is caught
before its bytes are used. ``length`` is 1 … :data:`MAX_CHUNK` and MUST equal the bytes after
the header. Which chunk size a sender picks within that is its own (:class:`~rdesk.protocol.
pacer.Pacer` picks small chunks on slow links, large ones on fast links).

:func:`decode_chunk` raises :class:`RemoteProtocolError` and nothing else on a bad frame;
:func:`encode_chunk` raises :class:`LocalProtocolError` on a bad message. Whether a chunk is
allowed (credit, size, offset) is :mod:`rdesk.protocol.transfer`'s business.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import ClassVar

from rdesk.protocol import limits
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError

__all__ = ["CHUNK_HEADER", "CHUNK_KIND", "MAX_CHUNK", "MAX_CHUNK_MESSAGE", "XferData",
           "decode_chunk", "encode_chunk"]

#: The binary message kind of a transfer chunk (an update is kind 1).
CHUNK_KIND = 2
CHUNK_HEADER = struct.Struct("!BBHIQI")
#: Largest payload of one chunk: 256 KiB, so the per-message cost (a websocket frame, the
#: session's checks, a write, a credit) is paid rarely on fast links.
MAX_CHUNK = limits.MAX_CHUNK
#: Largest chunk message, header included: what the host's websocket must admit from a viewer.
MAX_CHUNK_MESSAGE = limits.MAX_CHUNK_MESSAGE
assert CHUNK_HEADER.size + MAX_CHUNK == MAX_CHUNK_MESSAGE
_MAX_ID = 0xFFFFFFFF
_MAX_OFFSET = 1 << 40  # transfer.MAX_FILE_SIZE: no file is larger


@dataclasses.dataclass(frozen=True)
class XferData:
    """Either way: bytes ``offset`` … ``offset + len(data)`` of transfer ``id``'s file."""

    T: ClassVar[str] = "xfer_data"
    id: int
    offset: int
    data: bytes

    def __repr__(self) -> str:
        return f"XferData({self.id}, @{self.offset}, {len(self.data)} B)"


def encode_chunk(chunk: XferData) -> bytes:
    """The binary message carrying ``chunk``."""
    if type(chunk.id) is not int or not 0 <= chunk.id <= _MAX_ID:
        raise LocalProtocolError("xfer_data.id out of range")
    if type(chunk.offset) is not int or not 0 <= chunk.offset <= _MAX_OFFSET:
        raise LocalProtocolError("xfer_data.offset out of range")
    if not isinstance(chunk.data, (bytes, bytearray, memoryview)):
        raise LocalProtocolError("xfer_data.data must be bytes")
    length = len(chunk.data)
    if not 1 <= length <= MAX_CHUNK:
        raise LocalProtocolError(f"xfer_data holds 1..{MAX_CHUNK} bytes, not {length}")
    return CHUNK_HEADER.pack(CHUNK_KIND, 0, 0, chunk.id, chunk.offset, length) + chunk.data


def decode_chunk(data: bytes) -> XferData:
    """Parse one binary message of kind :data:`CHUNK_KIND`."""
    if len(data) > MAX_CHUNK_MESSAGE:
        raise RemoteProtocolError(f"xfer_data exceeds {MAX_CHUNK_MESSAGE} bytes",
                                  CloseCode.TOO_BIG)
    if len(data) < CHUNK_HEADER.size:
        raise RemoteProtocolError("xfer_data shorter than its header")
    kind, reserved, reserved16, transfer_id, offset, length = CHUNK_HEADER.unpack_from(data)
    if kind != CHUNK_KIND or reserved or reserved16:
        raise RemoteProtocolError("xfer_data kind or reserved bytes are wrong")
    if offset > _MAX_OFFSET:
        raise RemoteProtocolError("xfer_data.offset out of range")
    if not 1 <= length <= MAX_CHUNK or length != len(data) - CHUNK_HEADER.size:
        raise RemoteProtocolError("xfer_data length is 0, too large, or not the payload's")
    return XferData(transfer_id, offset, data[CHUNK_HEADER.size:])
