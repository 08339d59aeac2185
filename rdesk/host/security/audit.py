"""The audit log: one JSON object per line for every security-relevant event.

``AuditLog(path)`` is a callable ``(kind, fields)`` that fits the ``on_event`` hook of
:class:`~rdesk.host.serve.server.HostServer`. Each line is::

    {"ts": "2026-11-23T09:43:37.123456Z", "kind": "auth_failure", "source": "10.0.0.5", ...}

Rules (docs/security.md, "Audit log"):

* **Whitelist only.** Each kind has a fixed set of fields it may record (:data:`FIELDS`);
  anything else a caller passes is dropped, so a secret, a keysym or typed text cannot reach the
  file by accident. Unknown kinds keep only :data:`COMMON_FIELDS`. Values are restricted to
  ``str`` (truncated to 256 characters), ``int``, ``float``, ``bool`` and ``None``.
* The file is created with mode 0600 and opened for appending; each line is written whole and
  flushed at once. ``fsync`` runs after every line (``sync="line"``, the default) or at most
  once per second (``sync="second"``, for busy hosts) and on :meth:`close`.
* Writing never raises into the host: an I/O error is logged once and the event is lost.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from rdesk.host.security.text import shown

__all__ = ["COMMON_FIELDS", "FIELDS", "AuditLog", "chain"]

log = logging.getLogger(__name__)

#: Fields any kind may carry.
COMMON_FIELDS = frozenset({"source", "viewer", "name", "reason", "code"})

#: Fields each known kind may carry (in addition to :data:`COMMON_FIELDS`). Never a secret,
#: never a keysym, text or clipboard content.
FIELDS: dict[str, frozenset[str]] = {
    "connect": frozenset(),
    "auth_success": frozenset({"role", "method", "cert_subject", "cert_serial"}),
    "auth_failure": frozenset({"method", "cert_subject", "cert_serial", "failures"}),
    "auth_locked": frozenset({"method", "retry_after"}),
    "password_rotated": frozenset({"failures"}),
    "protocol_error": frozenset(),
    "input_dropped": frozenset({"role", "type", "count"}),
    "policy_violation": frozenset({"role", "type"}),
    "rejected": frozenset({"count"}),
    "role_change": frozenset({"role", "old_role", "by"}),
    "control_change": frozenset({"holder", "old_holder", "by"}),
    "consent": frozenset({"decision", "role", "by"}),
    "session_error": frozenset(),
    "recording_started": frozenset({"file"}),
    "recording_error": frozenset({"file"}),
    "disconnect": frozenset({"duration"}),
    "host_start": frozenset({"port", "bind", "tls", "client_certs", "version"}),
    "host_stop": frozenset(),
    "input_released": frozenset({"keys", "buttons"}),
    "key_combo": frozenset({"combination", "action"}),
    "revoked": frozenset(),
    "session_end": frozenset(),
    "transfer": frozenset({"role", "direction", "file", "size", "sha256", "result"}),
    "clipboard": frozenset({"direction", "selection", "size"}),
    "resize": frozenset({"width", "height"}),
}

_MAX_STR = 256
_Scalar = str | int | float | bool | None


def _clean(value: object) -> _Scalar:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    # Controls and bidi overrides escaped: a reader printing the log raw is not attacked.
    return shown(str(value), _MAX_STR)


def _now_iso() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditLog:
    """Append-only JSON-lines audit log; call it as ``log(kind, fields)``.

    ``common`` and ``fields`` are the whitelist (the host's by default; the relay passes its
    own): a kind records only ``common`` plus its own ``fields``.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        sync: Literal["line", "second"] = "line",
        clock: Callable[[], float] = time.monotonic,
        timestamp: Callable[[], str] = _now_iso,
        common: frozenset[str] = COMMON_FIELDS,
        fields: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.path = Path(path)
        self._common = common
        self._fields: Mapping[str, frozenset[str]] = FIELDS if fields is None else fields
        self.sync = sync
        self._clock = clock
        self._timestamp = timestamp
        self._lock = threading.Lock()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps no looser mode
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._last_sync = float("-inf")
        self._dirty = False
        self._broken = False

    def filter(self, kind: str, fields: dict[str, object]) -> dict[str, _Scalar]:
        """The fields of ``fields`` that ``kind`` may record, cleaned (see the module doc)."""
        allowed = self._common | self._fields.get(kind, frozenset())
        return {k: _clean(v) for k, v in fields.items() if k in allowed}

    def __call__(self, kind: str, fields: dict[str, object] | None = None) -> None:
        record: dict[str, _Scalar] = {"ts": self._timestamp(), "kind": str(kind)[:64]}
        for key, value in self.filter(kind, fields or {}).items():
            record.setdefault(key, value)
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.write(line + "\n")  # line-buffered: flushed at the newline
                self._dirty = True
                now = self._clock()
                if self.sync == "line" or now - self._last_sync >= 1.0:
                    os.fsync(self._file.fileno())
                    self._last_sync = now
                    self._dirty = False
            except (OSError, ValueError) as exc:
                if not self._broken:
                    log.error("cannot write the audit log %s: %s", self.path, exc)
                    self._broken = True

    def close(self) -> None:
        """Flush, fsync and close (idempotent)."""
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.flush()
                if self._dirty:
                    os.fsync(self._file.fileno())
            except OSError as exc:
                log.error("cannot write the audit log %s: %s", self.path, exc)
            finally:
                self._file.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chain(*callbacks: Callable[[str, dict[str, object]], None] | None) -> Callable[
    [str, dict[str, object]], None
]:
    """One ``on_event`` callback calling each non-``None`` callback in turn."""
    active = [cb for cb in callbacks if cb is not None]

    def call(kind: str, fields: dict[str, object]) -> None:
        for cb in active:
            try:
                cb(kind, fields)
            except Exception:  # one broken consumer must not stop the others or the host
                log.exception("event callback failed for %s", kind)

    return call
