"""Run the relay's atheris harnesses for a bounded time (CI smoke); skipped without atheris."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris not installed (pip install -e .[fuzz])")

HERE = Path(__file__).parent
SECONDS = int(os.environ.get("RDESK_FUZZ_SECONDS", "20"))


@pytest.mark.timeout(SECONDS * 6 + 60)
@pytest.mark.parametrize("harness", ["fuzz_relay.py", "fuzz_rawlane.py"])
def test_relay_harness_runs_clean(harness: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(HERE / harness), f"-max_total_time={SECONDS}",
         "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=SECONDS * 6 + 30, cwd=HERE.parent.parent,
    )
    tail = result.stderr[-3000:]
    assert result.returncode == 0, tail
    assert "Done" in result.stderr, tail
