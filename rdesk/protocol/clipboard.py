"""Clipboard text on the wire: the messages, the chunking, the sans-I/O reassembly with its cap.

docs/protocol.md ("Clipboard") is normative; docs/session.md says why. Either end may offer
text (``clip_offer``: an id, which selection, the size in UTF-8 bytes), then sends it in
``clip_data`` chunks of at most :data:`CHUNK_BYTES` bytes of UTF-8 as base64, so no message
passes the control-message limit and a chunk may end inside a character: the text is decoded
(strictly) once whole. The receiver answers ``clip_result`` (``ok``, or a refusal with a
reason). It refuses an offer bigger than its cap **before** any chunk arrives, so the
oversize payload is never held; chunks of a refused offer are dropped as they come. A viewer
asks for the host's text with ``clip_get``; the host answers with an offer, or a refusal.

:class:`Assembler` is the receiving side: fed offers and chunks, it returns the finished text,
or a reason to refuse it (too big, a NUL, not the announced size), and raises
:class:`RemoteProtocolError` only for a peer breaking the framing (more bytes than announced,
an offer over one still open). No clock, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterator
from typing import ClassVar

from rdesk.protocol import limits
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.fields import Bool, Field, Int, OneOf, Str

__all__ = [
    "CHUNK_BYTES",
    "CLIPBOARD_TYPES",
    "HOST_SENDS",
    "MAX_CLIP_BYTES",
    "SELECTIONS",
    "VIEWER_SENDS",
    "Assembler",
    "ClipData",
    "ClipGet",
    "ClipOffer",
    "ClipResult",
    "chunks",
    "refusal",
]

#: Raw bytes in one ``clip_data``: its base64 (4/3 larger) and the JSON around it stay under
#: the 16 KiB control-message limit.
CHUNK_BYTES = 11 * 1024
#: The largest size an offer may announce at all (64 MiB); each end sets its own lower cap.
MAX_CLIP_BYTES = 64 << 20
#: The X selections that travel: the clipboard (Ctrl+C) and the mouse selection.
SELECTIONS = ("clipboard", "primary")

_ID = Int(0, 0xFFFFFFFF)
_REASON = Str(limits.MAX_STRING)


@dataclasses.dataclass(frozen=True)
class ClipOffer:
    """Either way: ``size`` bytes of UTF-8 text for ``selection`` follow in ``clip_data``."""

    T: ClassVar[str] = "clip_offer"
    FIELDS: ClassVar[dict[str, Field]] = {
        "id": _ID, "selection": OneOf(SELECTIONS), "size": Int(0, MAX_CLIP_BYTES),
    }  # fmt: skip
    id: int
    selection: str
    size: int


@dataclasses.dataclass(frozen=True)
class ClipData:
    """Either way: the next chunk of offer ``id``'s text."""

    T: ClassVar[str] = "clip_data"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "data": Str(4 * -(-CHUNK_BYTES // 3))}
    id: int
    #: Base64 (padded) of the chunk's bytes.
    data: str


@dataclasses.dataclass(frozen=True)
class ClipResult:
    """Either way: offer (or get) ``id`` was taken (``ok``) or refused for ``reason``."""

    T: ClassVar[str] = "clip_result"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "ok": Bool(), "reason": _REASON}
    id: int
    ok: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class ClipGet:
    """Viewer → host: send me ``selection``'s current text (as an offer with this ``id``)."""

    T: ClassVar[str] = "clip_get"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "selection": OneOf(SELECTIONS)}
    id: int
    selection: str


CLIPBOARD_TYPES = (ClipOffer, ClipData, ClipResult, ClipGet)
HOST_SENDS: tuple[type, ...] = (ClipOffer, ClipData, ClipResult)
VIEWER_SENDS: tuple[type, ...] = (ClipOffer, ClipData, ClipResult, ClipGet)


def refusal(text: str, cap: int) -> str | None:
    """Why ``text`` may not be sent or taken under ``cap`` bytes, or ``None``."""
    if "\x00" in text:
        return "clipboard text contains a NUL character"
    size = len(text.encode("utf-8"))
    if size > cap:
        return f"clipboard text of {size} bytes exceeds the {cap}-byte limit"
    return None


def chunks(offer_id: int, text: str, selection: str = "clipboard") -> Iterator[object]:
    """The messages that send ``text``: one :class:`ClipOffer`, then its :class:`ClipData` (at
    least one, empty for empty text, so the receiver always finishes on a chunk)."""
    raw = text.encode("utf-8")
    yield ClipOffer(offer_id, selection, len(raw))
    for start in range(0, max(len(raw), 1), CHUNK_BYTES):
        yield ClipData(offer_id, base64.b64encode(raw[start : start + CHUNK_BYTES]).decode())


@dataclasses.dataclass
class _Open:
    offer: ClipOffer
    buffer: bytearray


@dataclasses.dataclass
class Assembler:
    """Reassembles the peer's offers under ``cap`` bytes; one offer open at a time.

    :meth:`offer` returns a refusal reason (send it in a ``clip_result``) or ``None`` (the
    chunks may come). :meth:`data` returns ``(offer, text, None)`` once the announced size has
    arrived (for an empty text: its one empty chunk), ``(offer, None, reason)`` when the
    finished text is refused, and ``None`` while incomplete or for a chunk of a refused or
    unknown offer.
    """

    cap: int
    _open: _Open | None = None

    def offer(self, offer: ClipOffer) -> str | None:
        if self._open is not None:
            raise RemoteProtocolError(f"clip_offer {offer.id} while {self._open.offer.id} is open")
        if offer.size > self.cap:
            return f"clipboard text of {offer.size} bytes exceeds the {self.cap}-byte limit"
        self._open = _Open(offer, bytearray())
        return None

    def data(self, chunk: ClipData) -> tuple[ClipOffer, str | None, str | None] | None:
        current = self._open
        if current is None or current.offer.id != chunk.id:
            return None  # a refused offer's chunks, already in flight: dropped
        try:
            raw = base64.b64decode(chunk.data, validate=True)
        except (binascii.Error, ValueError):
            self._open = None
            raise RemoteProtocolError(f"clip_data {chunk.id}: not base64") from None
        if len(raw) > CHUNK_BYTES or len(current.buffer) + len(raw) > current.offer.size:
            self._open = None
            raise RemoteProtocolError(
                f"clip_data {chunk.id}: more than the {current.offer.size} bytes announced"
            )
        current.buffer += raw
        if len(current.buffer) < current.offer.size:
            return None
        return self._finish()

    def _finish(self) -> tuple[ClipOffer, str | None, str | None]:
        current = self._open
        assert current is not None
        self._open = None
        try:
            text = current.buffer.decode("utf-8")
        except UnicodeDecodeError:
            return (current.offer, None, "clipboard text is not valid UTF-8")
        reason = refusal(text, self.cap)
        return (current.offer, None, reason) if reason else (current.offer, text, None)
