"""Issue 18, defect 2: ``--consent ask`` refuses to start where nobody can answer.

Under systemd or ``nohup`` standard input is at end of file: the console that asks the local
user would end at once and every viewer would wait out the consent timeout and be rejected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_consent_ask_without_a_terminal_refuses_at_start(tmp_path: Path) -> None:
    # Standard input is /dev/null, as under systemd or nohup.
    host = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path), "host",
         "--consent", "ask", "--virtual", "320x240"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = host.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        host.terminate()  # a host that started anyway: let it stop its own display
        stdout, stderr = host.communicate(timeout=30)
        raise AssertionError(f"the host started with no terminal to ask on: {stdout}") from None
    assert host.returncode != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "--consent ask needs a terminal to ask on (stdin is not one)" in lines[0]
    assert "listening" not in stdout
