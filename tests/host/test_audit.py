"""The audit log: JSON lines, mode 0600, whitelisted fields only (no secret, no keystroke)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from rdesk.host.security.audit import AuditLog, chain

SECRET = "hunter2-very-secret"


def test_lines_are_json_with_utc_timestamp_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        audit("connect", {"source": "127.0.0.1"})
        audit("auth_success", {"source": "127.0.0.1", "viewer": 1, "role": "control"})
        audit("disconnect", {"viewer": 1, "name": "bob", "code": 1000, "reason": "bye"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in lines] == ["connect", "auth_success", "disconnect"]
    assert lines[0]["ts"].endswith("Z") and "T" in lines[0]["ts"]
    assert lines[1] == {**lines[1], "source": "127.0.0.1", "viewer": 1, "role": "control"}
    assert lines[2]["code"] == 1000


def test_appends_and_tightens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"kind":"old"}\n')
    os.chmod(path, 0o644)
    with AuditLog(path, sync="second") as audit:
        audit("connect", {"source": "::1"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(path.read_text().splitlines()) == 2


def test_secrets_and_keystrokes_never_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        audit("auth_failure", {"source": "10.0.0.1", "method": "password", "secret": SECRET,
                               "password": SECRET, "message": f"Auth(secret={SECRET})"})
        audit("input_dropped", {"viewer": 2, "reason": "view-only", "type": "key",
                                "keysym": 0xFF0D, "down": True, "text": "typed words"})
        audit("made_up_kind", {"viewer": 3, "secret": SECRET, "keysym": 65})
    text = path.read_text()
    assert SECRET not in text
    assert "keysym" not in text and "typed words" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert records[1] == {"ts": records[1]["ts"], "kind": "input_dropped", "viewer": 2,
                          "reason": "view-only", "type": "key"}
    assert records[2] == {"ts": records[2]["ts"], "kind": "made_up_kind", "viewer": 3}


def test_values_are_scalars_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        audit("rejected", {"reason": "x" * 10_000, "source": object()})
    record = json.loads(path.read_text())
    assert len(record["reason"]) == 256 and isinstance(record["source"], str)


def test_after_close_and_chain_never_raise(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "a.jsonl")
    audit.close()
    audit.close()
    audit("connect", {"source": "x"})  # silently ignored
    seen: list[str] = []

    def broken(kind: str, fields: dict[str, object]) -> None:
        raise RuntimeError("boom")

    chain(broken, None, lambda k, f: seen.append(k))("connect", {})
    assert seen == ["connect"]


def test_transfer_and_clipboard_lines_keep_their_facts_never_content(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as audit:
        audit("transfer", {"viewer": 2, "role": "control", "direction": "upload",
                           "file": "report.pdf", "size": 1234, "sha256": "ab" * 32,
                           "result": "done", "data": "PAYLOAD"})
        audit("clipboard", {"viewer": 2, "direction": "to-host", "selection": "clipboard",
                            "size": 11, "text": "hunter2 pwd"})
    transfer, clipboard = (json.loads(line) for line in path.read_text().splitlines())
    assert (transfer["direction"], transfer["file"], transfer["size"], transfer["result"]) == (
        "upload", "report.pdf", 1234, "done")
    assert transfer["sha256"] == "ab" * 32 and "data" not in transfer
    assert (clipboard["direction"], clipboard["selection"], clipboard["size"]) == (
        "to-host", "clipboard", 11)
    assert "hunter2" not in path.read_text()
