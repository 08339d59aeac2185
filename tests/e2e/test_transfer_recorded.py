"""Recordings note file transfers (name, size, direction, SHA-256, outcome), never their bytes.

A real host on Xvfb with ``--record``, a real viewer over real TLS, real files; the
recording is read back with the reader ``rdesk play`` uses, and ``rdesk play`` prints them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rdesk.cli import main
from rdesk.client.connection import connect
from rdesk.client.transfer import TransferError, Transfers
from rdesk.recording.format import Kind, read_recording
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb


async def test_a_recording_notes_each_transfer_and_holds_none_of_its_bytes(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    inbox, records = tmp_path / "inbox", tmp_path / "rec"
    host = host_factory(xvfb.display, transfer_dir=inbox, record_dir=records)
    # Random bytes, several chunks: a recorded chunk would show as this text in the file.
    data = os.urandom(3 << 20)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint,
                         name="tester")
    try:
        transfers = Transfers(conn)
        await transfers.put(source, "report.bin")
        await transfers.get("report.bin", tmp_path / "back.bin")
        with pytest.raises(TransferError, match="cannot open"):
            await transfers.get("missing.bin", tmp_path / "missing.bin")
    finally:
        await conn.close()
    digest = hashlib.sha256(data).hexdigest()
    deadline = asyncio.get_running_loop().time() + 20
    while True:  # the host closes the recording once it saw the viewer go
        paths = list(records.glob("*.rdrec"))
        kinds = [r.kind for r in read_recording(paths[0]).records()] if paths else []
        if Kind.END in kinds:
            break
        assert asyncio.get_running_loop().time() < deadline, kinds
        await asyncio.sleep(0.1)
    notes = [r.json() for r in read_recording(paths[0]).records() if r.kind is Kind.TRANSFER]
    assert notes == [
        {"direction": "upload", "file": "report.bin", "size": len(data), "sha256": digest,
         "result": "ok"},
        {"direction": "download", "file": "report.bin", "size": len(data), "sha256": digest,
         "result": "ok"},
        {"direction": "download", "file": "missing.bin", "size": 0, "sha256": "",
         "result": notes[2]["result"]},
    ]
    assert str(notes[2]["result"]).startswith("refused: cannot open")
    # The updates are there; not one chunk of the file, either way.
    assert Kind.UPDATE in kinds
    raw = paths[0].read_bytes()
    assert data[:64] not in raw and data[1 << 20:(1 << 20) + 64] not in raw
    # rdesk play shows them, before the frames.
    assert main(["--config-dir", str(tmp_path), "play", str(paths[0]), "--export-png",
                 str(tmp_path / "png")]) == 0
    out = capsys.readouterr().out.splitlines()
    shown = [line for line in out if line.startswith("rdesk: transfer at ")]
    assert len(shown) == 3 and out.index(shown[-1]) < len(out) - 1
    assert f"upload ok: report.bin ({len(data)} bytes, sha256 {digest})" in shown[0]
    assert "download ok: report.bin" in shown[1] and "download refused" in shown[2]
