"""The browser viewer's DOM-free core (``rdesk/web/core/``) under Node's test runner.

Each ``*.test.mjs`` here imports the core's modules directly and drives them with fake time
(and a fake socket for the connection): the session's timers, the reconnect policy, the
connection's timer driver and paint queue. Skipped where Node is not installed; the same
modules run for real in Chromium in ``tests/e2e/test_browser*.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
SUITES = sorted(HERE.glob("*.test.mjs"))


def test_the_suites_are_found() -> None:
    assert {p.name for p in SUITES} >= {
        "session_timers.test.mjs",
        "reconnect.test.mjs",
        "connection.test.mjs",
    }


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("suite", SUITES, ids=[p.name for p in SUITES])
def test_core_suite_passes_under_node(suite: Path) -> None:
    assert NODE is not None
    # The core is plain ES modules in ".js" files outside any package.json; Node 20 needs to be
    # told to detect that (newer Node does it by default and accepts the flag).
    result = subprocess.run(
        [NODE, "--experimental-detect-module", "--test", str(suite)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "# fail 0" in report and "# pass 0" not in report, report
