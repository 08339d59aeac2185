"""Session recordings: each viewer's screen stream, exactly as sent, with timestamps.

The container (``.rdrec``, docs/security.md, "Recordings") is::

    header   MAGIC b"RDESKREC" | version u16 (1) | length u32 | JSON header (UTF-8)
    record*  kind u8 | t_us u64 | length u32 | payload          (big-endian)

The JSON header holds ``session`` (the session id), ``started`` (ISO-8601 UTC), ``host`` (its
display name), ``record_input`` and ``record_clipboard``. ``t_us`` counts microseconds since
the recording started.
Record kinds (:class:`Kind`):

* ``SCREEN`` (1): JSON ``{"width": W, "height": H}`` — from the Welcome and every Screen
  message; the framebuffer starts afresh (black) at that size.
* ``UPDATE`` (2): one binary Update frame, byte for byte as the host sent it
  (:func:`rdesk.protocol.codec.decode` reads it).
* ``INPUT`` (3): a viewer's pointer / wheel / key control message as received (JSON text) —
  written only when the host runs with ``--record-input``.
* ``END`` (4): JSON ``{"reason": ...}``, written by :meth:`Recorder.close`.
* ``TRANSFER`` (5): JSON ``{"direction", "file", "size", "sha256", "result"}`` — one file
  transfer's outcome (:meth:`Recorder.transfer`). The file's bytes are never recorded: binary
  transfer chunks (kind 2) are not updates and are left out.
* ``CLIPBOARD`` (6): JSON ``{"from": "host"|"viewer", "message": {...}}`` — one ``clip_*``
  message as exchanged (offers, their base64 chunks, results, gets) — written only when the
  host runs with ``--record-clipboard``: a clipboard may hold what the screen never showed (a
  password copied from a manager), so by default a recording keeps none of it.

Every record is handed to the OS as soon as it is written (a crash of the host process loses
nothing); ``fsync`` runs at most once per second and one second after the first unsynced
record at the latest, and on close — so a crash of the machine loses at most the last second.
A reader stops at the first incomplete record (:attr:`Recording.truncated`), so a file cut
anywhere replays up to its last complete record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import json
import logging
import os
import re
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from rdesk.common.files import create_exclusive
from rdesk.protocol import limits
from rdesk.protocol.codec import UPDATE_KIND

__all__ = [
    "MAGIC",
    "SUFFIX",
    "TRANSFER_FIELDS",
    "VERSION",
    "Kind",
    "Record",
    "Recorder",
    "Recording",
    "RecordingError",
    "read_recording",
]

log = logging.getLogger(__name__)

MAGIC = b"RDESKREC"
VERSION = 1
SUFFIX = ".rdrec"
_FILE_HEADER = struct.Struct("!8sHI")
_RECORD = struct.Struct("!BQI")
_MAX_HEADER = 64 * 1024
_MAX_RECORD = limits.MAX_UPDATE_MESSAGE + 1024
_INPUT_TYPES = frozenset({"pointer", "wheel", "key"})
_CLIPBOARD_TYPES = frozenset({"clip_offer", "clip_data", "clip_result", "clip_get"})
#: What a TRANSFER record holds: the audit event's fields, never the bytes.
TRANSFER_FIELDS = ("direction", "file", "size", "sha256", "result")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


class RecordingError(Exception):
    """A recording could not be written or is not a recording; ``str()`` is one line."""


class Kind(enum.IntEnum):
    SCREEN = 1
    UPDATE = 2
    INPUT = 3
    END = 4
    TRANSFER = 5
    CLIPBOARD = 6


@dataclasses.dataclass(frozen=True)
class Record:
    kind: Kind
    t_us: int
    payload: bytes

    def json(self) -> dict[str, object]:
        value = json.loads(self.payload)
        if not isinstance(value, dict):
            raise RecordingError("record payload is not a JSON object")
        return value


def _packed(kind: Kind, t_us: int, payload: bytes) -> bytes:
    """One record as the file holds it: its header, then its payload."""
    return _RECORD.pack(int(kind), t_us, len(payload)) + payload


class Recorder:
    """Writes one viewer session to ``directory/<session_id>.rdrec``.

    Feed it every frame sent to the viewer (:meth:`sent`) and every message received from it
    (:meth:`received`); it keeps what the format holds and ignores the rest. Never raises into
    the host after construction: a write error is logged once and recording stops.
    """

    def __init__(
        self,
        directory: Path | str,
        session_id: str,
        *,
        record_input: bool = False,
        record_clipboard: bool = False,
        host_name: str = "",
        screen: tuple[int, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.record_input = record_input
        self.record_clipboard = record_clipboard
        self._clock = clock
        self._start = clock()
        safe = _SAFE_ID.sub("_", session_id)[:96] or "session"
        header = json.dumps(
            {
                "session": session_id,
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "host": host_name,
                "record_input": record_input,
                "record_clipboard": record_clipboard,
            }
        ).encode()
        self.path = self.directory / f"{safe}{SUFFIX}"
        # The screen the session starts on goes in with the header: a host killed before the
        # welcome leaves a recording that opens on its screen like every other.
        self._screen = screen
        first = b"" if screen is None else self._screen_record(0, *screen)
        try:
            if not self.directory.is_dir():
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = create_exclusive(self.path, _FILE_HEADER.pack(MAGIC, VERSION, len(header))
                                  + header + first)
        except OSError as exc:
            raise RecordingError(
                f"cannot create a recording in {self.directory}: {exc.strerror or exc}"
            ) from None
        self._file: BinaryIO = os.fdopen(fd, "ab")
        self._last_sync = float("-inf")
        self._unsynced = True
        self._timer: asyncio.TimerHandle | None = None
        self._broken = False

    # --- feeding ---------------------------------------------------------------------------

    def sent(self, data: str | bytes) -> None:
        """A frame the host sent to the viewer: updates and size changes are kept (a download's
        chunks are not: :meth:`transfer` notes the transfer)."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            if data[:1] == bytes((UPDATE_KIND,)):
                self.update(bytes(data))
            return
        obj = _json_object(data)
        if obj is None:
            return
        if obj.get("t") in ("welcome", "screen"):
            width, height = obj.get("width"), obj.get("height")
            if isinstance(width, int) and isinstance(height, int):
                self.screen(width, height)
        elif obj.get("t") in _CLIPBOARD_TYPES:
            self._clipboard("host", obj)

    def received(self, data: str | bytes) -> None:
        """A message the viewer sent: input is kept only with ``record_input``, clipboard
        messages only with ``record_clipboard``."""
        if not (self.record_input or self.record_clipboard) or not isinstance(data, str):
            return
        obj = _json_object(data)
        if obj is None:
            return
        if obj.get("t") in _INPUT_TYPES:
            self.record(Kind.INPUT, data.encode())
        elif obj.get("t") in _CLIPBOARD_TYPES:
            self._clipboard("viewer", obj)

    def _clipboard(self, sender: str, message: dict[str, object]) -> None:
        if self.record_clipboard:
            self.record(Kind.CLIPBOARD, json.dumps({"from": sender, "message": message}).encode())

    def transfer(self, audit: Mapping[str, object]) -> None:
        """Note one transfer's outcome, from its audit event's fields (``file`` escaped as
        the audit has it); whatever else the event holds is left out."""
        note = {key: audit.get(key) for key in TRANSFER_FIELDS}
        self.record(Kind.TRANSFER, json.dumps(note)[:4096].encode())

    def screen(self, width: int, height: int) -> None:
        """A screen size: kept when it differs from the last one kept."""
        if self._screen == (width, height):
            return
        self._screen = (width, height)
        self._write(self._screen_record(self._t_us(), width, height))

    @staticmethod
    def _screen_record(t_us: int, width: int, height: int) -> bytes:
        return _packed(Kind.SCREEN, t_us, json.dumps({"width": width, "height": height}).encode())

    def _t_us(self) -> int:
        return max(0, int((self._clock() - self._start) * 1_000_000))

    def update(self, frame: bytes) -> None:
        self.record(Kind.UPDATE, frame)

    def record(self, kind: Kind, payload: bytes) -> None:
        if (kind is Kind.INPUT and not self.record_input) or (
                kind is Kind.CLIPBOARD and not self.record_clipboard):
            return
        self._write(_packed(kind, self._t_us(), payload))

    # --- durability ------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._broken or self._file.closed:
            return
        try:
            self._file.write(data)
            self._file.flush()  # in the OS now: a host crash loses nothing
            self._unsynced = True
            self._maybe_sync()
        except OSError as exc:
            self._fail(exc)

    def _maybe_sync(self) -> None:
        now = self._clock()
        if now - self._last_sync >= 1.0:
            self.sync()
            return
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (tests, tools): the next write or close() syncs
            delay = max(0.0, 1.0 - (now - self._last_sync))
            self._timer = loop.call_later(delay, self.sync)

    def sync(self) -> None:
        """fsync now if anything is unsynced."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._unsynced or self._file.closed or self._broken:
            return
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            self._fail(exc)
        self._unsynced = False
        self._last_sync = self._clock()

    def _fail(self, exc: OSError) -> None:
        if not self._broken:
            log.error("recording %s stopped: %s", self.path, exc.strerror or exc)
        self._broken = True

    def close(self, reason: str = "") -> None:
        """Write the END record, fsync and close (idempotent)."""
        if self._file.closed:
            return
        self.record(Kind.END, json.dumps({"reason": reason[:256]}).encode())
        self.sync()
        try:
            self._file.close()
        except OSError as exc:
            self._fail(exc)


def _json_object(text: str) -> dict[str, object] | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# --- reading -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Recording:
    """An opened recording: its header, then its records in order via :meth:`records`."""

    path: Path
    header: dict[str, object]
    #: Set once :meth:`records` met an incomplete or corrupt record and stopped there.
    truncated: bool = False
    _data: bytes = b""
    _offset: int = 0

    def records(self) -> Iterator[Record]:
        data, pos = self._data, self._offset
        while pos < len(data):
            if len(data) - pos < _RECORD.size:
                self.truncated = True
                return
            kind, t_us, length = _RECORD.unpack_from(data, pos)
            end = pos + _RECORD.size + length
            if length > _MAX_RECORD or kind not in Kind._value2member_map_ or end > len(data):
                self.truncated = True
                return
            yield Record(Kind(kind), t_us, data[pos + _RECORD.size : end])
            pos = end


def read_recording(path: Path | str) -> Recording:
    """Open a recording; raise :class:`RecordingError` if it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) < _FILE_HEADER.size:
        raise RecordingError(f"{path} is not an rdesk recording (too short)")
    magic, version, length = _FILE_HEADER.unpack_from(data)
    if magic != MAGIC:
        raise RecordingError(f"{path} is not an rdesk recording")
    if version != VERSION:
        raise RecordingError(f"{path}: unsupported recording version {version}")
    start = _FILE_HEADER.size
    if length > _MAX_HEADER or start + length > len(data):
        raise RecordingError(f"{path}: damaged recording header")
    try:
        header = json.loads(data[start : start + length])
    except ValueError:
        raise RecordingError(f"{path}: damaged recording header") from None
    if not isinstance(header, dict):
        raise RecordingError(f"{path}: damaged recording header")
    return Recording(path, header, _data=data, _offset=start + length)
