"""Run ``rdesk`` without the host extra (see :mod:`tests.cli.without_host_extra`)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Run:
    """One run: rdesk's result and the host-extra modules it tried to import."""

    result: subprocess.CompletedProcess[str]
    blocked: list[str]


def rdesk_without_host_extra(tmp: Path, *args: str, env: dict[str, str] | None = None,
                             timeout: float = 60) -> Run:
    """Run ``rdesk --config-dir TMP/viewer-config ARGS...`` with the host extra unimportable."""
    log = tmp / "blocked-imports.txt"
    log.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "tests.cli.without_host_extra",
         "--config-dir", str(tmp / "viewer-config"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        env={**(env if env is not None else os.environ), "RDESK_BLOCKED_LOG": str(log)},
    )
    blocked = log.read_text().split() if log.exists() else []
    return Run(result, blocked)
