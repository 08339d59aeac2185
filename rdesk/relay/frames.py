"""A minimal, strict websocket frame reader for the relay's splice (sans-I/O, RFC 6455 §5).

Once a viewer and a host are spliced, the relay no longer needs messages: it forwards
**frames**, each as it is complete, unmasked (both peers are websocket clients of the relay,
so every frame they send is masked and every frame the relay sends must not be). What it
checks, so nothing malformed crosses the relay and nothing off the wire is unbounded:

- no RSV bit (the relay negotiates no extension), a known opcode, the mask bit set;
- control frames (close, ping, pong) of at most 125 bytes and never fragmented;
- continuation frames only inside a fragmented message, and no new data frame inside one;
- a text frame is refused (1003): everything across a splice is the tunnel's ciphertext;
- a message (the sum of its fragments) of at most ``max_message`` bytes (1009), checked on the
  frame header, before its payload is buffered;
- a close frame's code is one a peer may send and its reason is UTF-8 (1002, 1007).

:meth:`FrameReader.feed` returns the complete frames found so far; what is left of an
incomplete frame stays buffered (at most one frame's header and payload).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from websockets.speedups import apply_mask

__all__ = [
    "CLOSE",
    "CONTINUATION",
    "BINARY",
    "PING",
    "PONG",
    "TEXT",
    "Frame",
    "FrameError",
    "FrameReader",
    "close_frame",
    "encode",
    "parse_close",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = frozenset({CONTINUATION, TEXT, BINARY})
_CONTROL = frozenset({CLOSE, PING, PONG})
#: Close codes a peer may put in a close frame (RFC 6455 §7.4; 1005, 1006, 1015 never).
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


class FrameError(Exception):
    """A frame the relay refuses: close the splice with ``code`` and the one-line ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class Frame(NamedTuple):
    """One complete frame: its opcode, FIN bit, unmasked payload, and ``header``: the frame's
    header as the relay forwards it (the same, without the mask bit and key)."""

    opcode: int
    fin: bool
    payload: bytes
    header: bytes


class FrameReader:
    """Frames sent by one websocket client, fed as bytes arrive.

    :param side: names the peer in refusals (``"viewer sent text: ..."``).
    :param max_message: largest message (all its fragments) accepted, in bytes.
    """

    def __init__(self, side: str, max_message: int) -> None:
        self.side = side
        self.max_message = max_message
        self._buffer = bytearray()
        self._need = 2  # bytes the buffered incomplete frame needs before it can be parsed
        self._message: int | None = None  # bytes so far of a fragmented message, if in one

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames complete once ``data`` is appended, in order; what is left of an
        incomplete frame stays buffered. Raises :class:`FrameError`."""
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._need:  # a large frame arriving: no re-parse, no copy
                return []
            data = bytes(self._buffer)
            self._buffer.clear()
        view = memoryview(data)
        found: list[Frame] = []
        start, size, need = 0, len(data), 2
        while True:
            if size - start < 2:
                break
            first, second = data[start], data[start + 1]
            length, head = second & 0x7F, start + 2
            if length == 126:
                if size - head < 2:
                    need = 4
                    break
                length = _U16.unpack_from(data, head)[0]
                head += 2
            elif length == 127:
                if size - head < 8:
                    need = 10
                    break
                length = _U64.unpack_from(data, head)[0]
                head += 8
            # The common frame (whole, binary, masked, within the limit) skips the checks.
            if (first != 0x82 or second < 0x80 or self._message is not None
                    or length > self.max_message):
                self._check(first, second, length)
            end = head + 4 + length
            if end > size:
                need = end - start
                break
            payload = apply_mask(view[head + 4:end], data[head:head + 4])
            header = bytes((first, second & 0x7F)) + data[start + 2:head]
            opcode, fin = first & 0x0F, first >= 0x80
            if opcode <= BINARY:
                self._message = None if fin else (self._message or 0) + length
            found.append(Frame(opcode, fin, payload, header))
            start = end
        if start < size:
            self._buffer += view[start:]
            self._need = need
        return found

    def _check(self, first: int, second: int, length: int) -> None:
        """Refuse a frame on its header alone, before its payload is buffered."""
        opcode, fin = first & 0x0F, bool(first & 0x80)
        if first & 0x70:
            raise FrameError(1002, f"{self.side} sent a frame with a reserved bit set")
        if not second & 0x80:
            raise FrameError(1002, f"{self.side} sent an unmasked frame")
        if opcode in _CONTROL:
            if length > 125 or not fin:
                raise FrameError(1002, f"{self.side} sent a long or fragmented control frame")
            return
        if opcode not in _DATA:
            raise FrameError(1002, f"{self.side} sent a frame of unknown opcode {opcode}")
        if opcode == TEXT:
            raise FrameError(1003, f"{self.side} sent text: the splice is binary only")
        if (opcode == CONTINUATION) != (self._message is not None):
            raise FrameError(1002, f"{self.side} sent a fragment out of sequence")
        if (self._message or 0) + length > self.max_message:
            raise FrameError(1009, f"{self.side} sent a message over the splice limit")


def encode(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A frame as a server sends it (unmasked)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 1 << 16:
        return bytes((first, 126)) + _U16.pack(length) + payload
    return bytes((first, 127)) + _U64.pack(length) + payload


def parse_close(side: str, payload: bytes) -> tuple[int | None, str]:
    """The code (``None`` if the frame has none) and reason of a close frame's payload."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise FrameError(1002, f"{side} sent a close frame of one byte")
    code = _U16.unpack_from(payload)[0]
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        raise FrameError(1002, f"{side} sent the close code {code}")
    try:
        return code, payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(1007, f"{side} sent a close reason that is not UTF-8") from None


def close_frame(code: int, reason: str) -> bytes:
    """A close frame with ``code`` and ``reason`` cut to fit (123 bytes of UTF-8)."""
    text = reason.encode()[:123].decode("utf-8", "ignore").encode()
    return encode(CLOSE, _U16.pack(code) + text)
