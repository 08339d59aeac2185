"""The lab features through the real `rdesk host` command: audit log and session recording."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from tests.e2e.test_foundation import _free_port
from tests.xserver import Painter, Xvfb

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _start_host(
    tmp_path: Path, display: str, *extra: str
) -> tuple[subprocess.Popen[str], str, int]:
    port = _free_port()
    (tmp_path / "pw").write_text("lab password\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "cfg"), "host",
         "--display", display, "--bind", "127.0.0.1", "--port", str(port),
         "--password-file", str(tmp_path / "pw"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "fingerprint:" in line:
            return proc, line.split()[-1], port
    raise AssertionError(proc.stderr.read() if proc.stderr else "host did not start")


def test_audit_log_and_recording(xvfb: Xvfb, rdesk_cli: Cli, tmp_path: Path) -> None:
    audit, records = tmp_path / "audit.jsonl", tmp_path / "rec"
    with Painter(xvfb.display, seed=4):
        proc, fingerprint, port = _start_host(
            tmp_path, xvfb.display, "--audit-log", str(audit), "--record", str(records)
        )
        try:
            url = f"wss://127.0.0.1:{port}"
            wrong = tmp_path / "wrong"
            wrong.write_text("guess\n")
            result = rdesk_cli("snapshot", url, "--fingerprint", fingerprint,
                               "--password-file", str(wrong), "-o", str(tmp_path / "no.png"))
            assert result.returncode == 3  # rdesk.cli.exits.AUTH_FAILED
            shot = tmp_path / "shot.png"
            result = rdesk_cli("snapshot", url, "--fingerprint", fingerprint,
                               "--password-file", str(tmp_path / "pw"), "-o", str(shot))
            assert result.returncode == 0, result.stderr
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    kinds = [line["kind"] for line in lines]
    assert {"connect", "auth_failure", "auth_success", "disconnect"} <= set(kinds)
    text = audit.read_text()
    assert "guess" not in text and "lab password" not in text  # never a secret
    assert audit.stat().st_mode & 0o777 == 0o600

    recordings = sorted(records.glob("*.rdrec"))
    assert len(recordings) == 1
    frames = tmp_path / "frames"
    result = rdesk_cli("play", str(recordings[0]), "--export-png", str(frames))
    assert result.returncode == 0, result.stderr
    exported = sorted(frames.glob("*.png"))
    assert exported
    # The last frame of the recording is the screen the snapshot saw.
    last = Image.open(exported[-1]).convert("RGB")
    assert last.tobytes() == Image.open(shot).convert("RGB").tobytes()
    assert os.stat(recordings[0]).st_mode & 0o777 == 0o600
