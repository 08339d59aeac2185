"""rdesk.protocol is sans-I/O: it imports nothing but the standard library and itself.

docs/architecture.md, "Rooms": no asyncio, websockets, mss, PIL, numpy or pynput in
``rdesk/protocol``. The table of which room may import which is tests/test_layering.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.imports import imported_names

PACKAGE = "rdesk.protocol"
PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "rdesk" / "protocol"
#: Standard-library modules that are I/O or event loops, refused even though they are stdlib.
FORBIDDEN_STDLIB = {"asyncio", "socket", "ssl", "selectors", "threading", "time"}



def check(source: str, module: str = "rdesk.protocol.example", is_package: bool = False
          ) -> list[str]:
    """The offending imports of ``source``."""
    bad = []
    for name in imported_names(source, module, is_package):
        top = name.split(".")[0]
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            continue
        if top == "__future__" or (
            top in sys.stdlib_module_names and top not in FORBIDDEN_STDLIB
        ):
            continue
        bad.append(name)
    return bad


def protocol_files() -> list[Path]:
    files = sorted(PROTOCOL_DIR.rglob("*.py"))
    assert files, f"no modules found under {PROTOCOL_DIR}"
    return files


@pytest.mark.parametrize("path", protocol_files(), ids=lambda p: p.name)
def test_protocol_imports_only_stdlib(path: Path) -> None:
    rel = path.relative_to(PROTOCOL_DIR.parent.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    bad = check(path.read_text(encoding="utf-8"), ".".join(parts), is_package)
    assert not bad, f"{path.name} imports non-stdlib modules: {bad}"


def test_every_module_is_checked() -> None:
    names = {p.name for p in protocol_files()}
    assert {"__init__.py", "codec.py", "session.py", "states.py", "flow.py"} <= names


@pytest.mark.parametrize(
    "source",
    [
        "import numpy",
        "import numpy as np",
        "from PIL import Image",
        "import websockets.sync.client",
        "from rdesk.host.screen import capture",
        "from rdesk import cli",
        "import rdesk",
        "import asyncio",
        "from time import monotonic",
        "def f():\n    import mss\n",
        "try:\n    import pynput\nexcept ImportError:\n    pass\n",
        "from .. import host",
        "from ..client import connection",
    ],
)
def test_checker_can_fail(source: str) -> None:
    assert check(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import json",
        "import dataclasses, enum",
        "from collections import OrderedDict",
        "from __future__ import annotations",
        "from rdesk.protocol import limits",
        "from rdesk.protocol.codec import encode",
        "from . import limits",
        "from .messages import Hello",
    ],
)
def test_checker_accepts_stdlib_and_self(source: str) -> None:
    assert check(source) == [], source


def test_relative_import_in_package_init() -> None:
    assert check("from . import codec", "rdesk.protocol", is_package=True) == []
    assert check("from .. import host", "rdesk.protocol", is_package=True) == ["rdesk.host"]
