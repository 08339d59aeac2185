"""The relay's audit log: the host audit log's format and rules, with the relay's own events.

Same file format and guarantees as :class:`rdesk.host.security.audit.AuditLog` (JSON lines,
mode 0600, whitelisted fields, never raises into the relay); only the whitelist differs. The
relay never records payload: a splice is logged by its session, its ends and its byte counts.
"""

from __future__ import annotations

from pathlib import Path

from rdesk.host.security.audit import AuditLog

__all__ = ["RELAY_FIELDS", "RelayAuditLog"]

_COMMON = frozenset({"source", "id", "reason", "code"})

#: Fields each relay event may record, besides ``source``, ``id``, ``reason`` and ``code``.
RELAY_FIELDS: dict[str, frozenset[str]] = {
    "relay_start": frozenset({"bind", "port", "splice_port", "splicer", "fingerprint",
                              "open", "instance", "version"}),
    "relay_drain": frozenset({"hosts", "splices", "raw", "grace"}),
    "relay_stop": frozenset(),
    "register": frozenset({"token", "replaced"}),
    "register_refused": frozenset(),
    "unregister": frozenset({"duration"}),
    "rendezvous": frozenset({"session", "via", "lane"}),
    "connect_refused": frozenset(),
    "data_refused": frozenset({"session"}),
    "splice_end": frozenset({"session", "viewer_bytes", "host_bytes", "duration"}),
    "rate_limited": frozenset({"endpoint"}),
    # The raw lane (rdesk/relay/rawrelay.py): the joins, their ends, the refusals.
    "raw_join": frozenset({"session", "splicer"}),
    "raw_end": frozenset({"session", "viewer_bytes", "host_bytes", "duration"}),
    "raw_refused": frozenset({"session", "count"}),
    "limits_local": frozenset(),  # the directory cannot answer: this instance's own limits
    "limits_shared": frozenset(),  # it answers again
}


class RelayAuditLog(AuditLog):
    """``RelayAuditLog(path)`` called as ``log(kind, fields)``; see :data:`RELAY_FIELDS`."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, common=_COMMON, fields=RELAY_FIELDS)
