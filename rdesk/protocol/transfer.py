"""File transfer on the wire: the messages, the name rule, the per-transfer flow control.

docs/protocol.md ("File transfer") is normative; docs/transfer.md says why. Every transfer is
started by the viewer (``xfer_put``, ``xfer_get``, ``xfer_list``) under an id it picks; the
bytes travel raw in binary ``xfer_data`` chunks (:mod:`rdesk.protocol.chunks`) of at most
:data:`CHUNK` bytes. The *receiver* of the bytes grants credit (``xfer_credit``, in chunks)
and never more than :data:`WINDOW` chunks are unreceived: a peer that stops reading stops the
sender after one window, so neither end can be made to buffer a file.

Sans-I/O: :class:`Sending` and :class:`Receiving` are fed messages and bytes, hold the running
SHA-256, and raise :class:`RemoteProtocolError` when the peer breaks the rules (data without
credit, more bytes than announced, credit beyond the window). No clock, no file. How much a
sender should have unconfirmed within its credit is :mod:`rdesk.protocol.pacer`'s business.
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from typing import ClassVar

from rdesk.protocol import limits
from rdesk.protocol.chunks import MAX_CHUNK, XferData
from rdesk.protocol.errors import LocalProtocolError, RemoteProtocolError
from rdesk.protocol.fields import Bool, Field, Int, Str

__all__ = [
    "CHUNK",
    "MAX_FILE_SIZE",
    "MAX_NAME_BYTES",
    "CREDIT_BATCH",
    "TRANSFER_TYPES",
    "WINDOW",
    "Receiving",
    "Sending",
    "XferCancel",
    "XferCredit",
    "XferData",
    "XferDone",
    "XferEnd",
    "XferEntry",
    "XferGet",
    "XferList",
    "XferPut",
    "XferReady",
    "check_name",
]

#: Most bytes in one ``xfer_data`` (256 KiB).
CHUNK = MAX_CHUNK
#: Chunks a receiver lets be in flight per transfer, at most: 16 × the chunk size (4 MiB
#: of 256 KiB chunks on a fast link, 64 KiB of 4 KiB ones on a slow one).
WINDOW = 16
#: A receiver gives credit back every this many chunks stored: often enough for the sender's
#: :class:`~rdesk.protocol.pacer.Pacer` to see the link, rarely enough to cost little.
CREDIT_BATCH = 2
#: Largest file either end announces or accepts (1 TiB); hosts set lower caps.
MAX_FILE_SIZE = 1 << 40
#: A file name's UTF-8 length limit: what every common file system allows.
MAX_NAME_BYTES = 255

_ID = Int(0, 0xFFFFFFFF)
_NAME = Str(MAX_NAME_BYTES)
_SIZE = Int(0, MAX_FILE_SIZE)
_SHA = Str(64)  # 64 lowercase hex digits; "" where no digest applies


_REASON = Str(limits.MAX_STRING)


@dataclasses.dataclass(frozen=True)
class XferList:
    """Viewer → host: list the transfer folder; answered by ``xfer_entry``s, then ``xfer_done``."""

    T: ClassVar[str] = "xfer_list"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID}
    id: int


@dataclasses.dataclass(frozen=True)
class XferPut:
    """Viewer → host: I will send ``size`` bytes of a file called ``name``."""

    T: ClassVar[str] = "xfer_put"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "name": _NAME, "size": _SIZE}
    id: int
    name: str
    size: int


@dataclasses.dataclass(frozen=True)
class XferGet:
    """Viewer → host: send me the file ``name`` of the transfer folder."""

    T: ClassVar[str] = "xfer_get"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "name": _NAME}
    id: int
    name: str


@dataclasses.dataclass(frozen=True)
class XferReady:
    """Host → viewer: transfer ``id`` is accepted, as file ``name`` of ``size`` bytes."""

    T: ClassVar[str] = "xfer_ready"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "name": _NAME, "size": _SIZE}
    id: int
    name: str
    size: int


@dataclasses.dataclass(frozen=True)
class XferEntry:
    """Host → viewer: one regular file of the transfer folder, for ``xfer_list`` ``id``."""

    T: ClassVar[str] = "xfer_entry"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "name": _NAME, "size": _SIZE}
    id: int
    name: str
    size: int


@dataclasses.dataclass(frozen=True)
class XferCredit:
    """Either way, from the receiver of the bytes: you may send ``chunks`` more chunks."""

    T: ClassVar[str] = "xfer_credit"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "chunks": Int(1, WINDOW)}
    id: int
    chunks: int


@dataclasses.dataclass(frozen=True)
class XferEnd:
    """Either way, from the sender of the bytes: that was all; their SHA-256 in hex."""

    T: ClassVar[str] = "xfer_end"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "sha256": _SHA}
    id: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class XferCancel:
    """Either way: transfer ``id`` stops here; the host removes any partial file."""

    T: ClassVar[str] = "xfer_cancel"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _ID, "reason": _REASON}
    id: int
    reason: str


@dataclasses.dataclass(frozen=True)
class XferDone:
    """Host → viewer: the host's last word on transfer ``id``.

    For an upload ``ok`` means the file is stored under ``name`` and its SHA-256 is
    ``sha256`` (the one the viewer announced); otherwise ``reason`` says why not. It also
    ends a listing, and refuses a get or put outright.
    """

    T: ClassVar[str] = "xfer_done"
    FIELDS: ClassVar[dict[str, Field]] = {
        "id": _ID,
        "ok": Bool(),
        "name": _NAME,
        "size": _SIZE,
        "sha256": _SHA,
        "reason": _REASON,
    }
    id: int
    ok: bool
    name: str
    size: int
    sha256: str
    reason: str


#: The control messages of transfers (``xfer_data`` is binary: rdesk/protocol/chunks.py).
TRANSFER_TYPES = (
    XferList, XferPut, XferGet, XferReady, XferEntry, XferCredit, XferEnd, XferCancel, XferDone,
)
#: What a viewer sends (the rest but data, credit, end and cancel are the host's).
VIEWER_SENDS: tuple[type, ...] = (
    XferList, XferPut, XferGet, XferData, XferCredit, XferEnd, XferCancel,
)
HOST_SENDS: tuple[type, ...] = (
    XferReady, XferEntry, XferData, XferCredit, XferEnd, XferCancel, XferDone,
)


# --- names ---------------------------------------------------------------------------------------

#: Names Windows reserves in every folder, with any extension (``NUL.txt`` is ``NUL``).
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{stem}{n}" for stem in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")
}
#: Characters a name never holds: separators of every platform, a drive's colon, wildcards
#: and quoting Windows refuses.
_FORBIDDEN = set('/\\:*?"<>|')


def check_name(name: str) -> str | None:
    """``None`` if ``name`` is a plain file name to use as is, else why it is refused.

    A peer's name is a name, never a path: no separator of any platform, no ``.`` or ``..``,
    no leading dot (no hidden files, and the host's partial files start with one), no
    control, format (bidi override, zero width) or unassigned character, no Windows device
    name, no trailing dot or space, at most :data:`MAX_NAME_BYTES` bytes of UTF-8. Refusing
    beats rewriting: the user sees the reason and picks another name.
    """
    if not name:
        return "the name is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"the name is longer than {MAX_NAME_BYTES} bytes"
    for char in name:
        if char in _FORBIDDEN:
            return f"the name holds {char!r}: a name, not a path"
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"the name holds the invisible or control character U+{ord(char):04X}"
    if name.startswith("."):
        return "the name starts with a dot (no '.', '..' or hidden files)"
    if name[-1] in ". " or name[0] == " ":
        return "the name starts or ends with a space, or ends with a dot"
    if name.split(".")[0].upper().rstrip(" ") in _RESERVED:
        return f"{name.split('.')[0]!r} is a reserved device name"
    if unicodedata.normalize("NFC", name) != name:
        return "the name is not in Unicode normal form C"
    return None


# --- flow control ----------------------------------------------------------------------------


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class Sending:
    """The sending end of one transfer: spends the receiver's credit, hashes what it sends.

    :param size: the bytes announced; :meth:`chunk` refuses to send more, :meth:`end` fewer.
    """

    def __init__(self, transfer_id: int, size: int) -> None:
        self.id = transfer_id
        self.size = size
        self.sent = 0
        #: Chunks the receiver allows now.
        self.credit = 0
        self._hash = hashlib.sha256()

    def on_credit(self, message: XferCredit) -> None:
        """The receiver freed ``chunks``; more than a window outstanding is a protocol error."""
        if self.credit + message.chunks > WINDOW:
            raise RemoteProtocolError(f"xfer_credit for {self.id} exceeds the window of {WINDOW}")
        self.credit += message.chunks

    @property
    def remaining(self) -> int:
        return self.size - self.sent

    def chunk(self, data: bytes) -> XferData:
        """The message carrying ``data`` (at most :data:`CHUNK` bytes); spends one credit."""
        if self.credit <= 0:
            raise LocalProtocolError("no credit: wait for xfer_credit")
        if not 0 < len(data) <= CHUNK or len(data) > self.remaining:
            raise LocalProtocolError("chunk empty, too large, or past the announced size")
        message = XferData(self.id, self.sent, data)
        self.credit -= 1
        self.sent += len(data)
        self._hash.update(data)
        return message

    def end(self) -> XferEnd:
        """The closing message, once every announced byte was sent."""
        if self.sent != self.size:
            raise LocalProtocolError(f"sent {self.sent} of {self.size} bytes")
        return XferEnd(self.id, self._hash.hexdigest())


class Receiving:
    """The receiving end of one transfer: checks each chunk against credit and size.

    The receiver starts by granting :meth:`initial_credit`; after it has *stored* each chunk
    (not merely received it) it calls :meth:`stored`, which returns the credit to send back
    in batches of half a window, or 0.
    """

    def __init__(self, transfer_id: int, size: int) -> None:
        self.id = transfer_id
        self.size = size
        self.received = 0
        self._granted = 0  # chunks the sender may still send
        self._unreturned = 0  # chunks stored whose credit was not yet given back
        self._hash = hashlib.sha256()

    def initial_credit(self) -> XferCredit | None:
        """The first grant, or ``None`` for an empty file (nothing to send but the end)."""
        if self.size == 0:
            return None
        self._granted = WINDOW
        return XferCredit(self.id, self._granted)

    def on_data(self, message: XferData) -> bytes:
        """The chunk's bytes; raises :class:`RemoteProtocolError` if the peer broke a rule."""
        if self._granted <= 0:
            raise RemoteProtocolError(f"xfer_data for {self.id} sent without credit")
        data = message.data
        if not data or len(data) > CHUNK:
            raise RemoteProtocolError(f"xfer_data for {self.id} is empty or over {CHUNK} bytes")
        if message.offset != self.received:
            raise RemoteProtocolError(f"xfer_data for {self.id} at offset {message.offset}, "
                                      f"expected {self.received}")
        if self.received + len(data) > self.size:
            raise RemoteProtocolError(f"transfer {self.id} sent more than its {self.size} bytes")
        self._granted -= 1
        self.received += len(data)
        self._hash.update(data)
        return data

    def stored(self) -> XferCredit | None:
        """One chunk is safely stored: the credit to give back now, if a batch is due.

        Every stored chunk's credit comes back (in batches of :data:`CREDIT_BATCH`, or at once
        when the sender has none left), even near the end of the file: a sender's
        :class:`Pacer` waits for credit to come back before it sends on.
        """
        self._unreturned += 1
        if self._unreturned >= CREDIT_BATCH or self._granted == 0:
            due, self._unreturned = self._unreturned, 0
            self._granted += due
            return XferCredit(self.id, due)
        return None

    def on_end(self, message: XferEnd) -> str | None:
        """``None`` if the bytes received are those announced and hashed as the peer says,
        else what went wrong (for the user, not a protocol error: a corrupt file is refused)."""
        if not _is_sha256(message.sha256):
            raise RemoteProtocolError(f"xfer_end for {self.id} carries no SHA-256")
        if self.received != self.size:
            return f"received {self.received} of {self.size} bytes"
        if self._hash.hexdigest() != message.sha256:
            return "the SHA-256 of the bytes received differs from the sender's"
        return None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()
