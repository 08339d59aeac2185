"""Run ``rdesk`` as on a viewer-only install (``pip install rdesk``, without ``[host]``).

    python -m tests.cli.without_host_extra ARGS...      # as `rdesk ARGS...`

A finder first on :data:`sys.meta_path` refuses the host extra's modules (:data:`BLOCKED`) as
if they were not installed: importing one raises :class:`ModuleNotFoundError`. Every refused
lookup is appended, one name a line, to the file named by ``$RDESK_BLOCKED_LOG`` (if set), so a
test sees an attempt even when the code under test swallowed the error. The exit status and
output are rdesk's own.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType

#: Top-level modules of the distributions in pyproject.toml's ``host`` extra.
BLOCKED = frozenset({"mss", "Xlib", "pynput", "numpy", "simplejpeg"})


class RefuseHostExtra(importlib.abc.MetaPathFinder):
    """Refuse :data:`BLOCKED` modules and their submodules; note each refusal."""

    def __init__(self, log: str | None) -> None:
        self.log = log

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in BLOCKED:
            return None
        if self.log:
            with open(self.log, "a", encoding="utf-8") as log:
                log.write(fullname + "\n")
        raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def run(argv: list[str]) -> int:
    """Install the blocker, then run ``rdesk`` with ``argv``."""
    already = sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED)
    if already:  # nothing imported them yet: this runs before rdesk is imported
        raise RuntimeError(f"already imported: {already}")
    sys.meta_path.insert(0, RefuseHostExtra(os.environ.get("RDESK_BLOCKED_LOG")))
    from rdesk.cli import main

    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
