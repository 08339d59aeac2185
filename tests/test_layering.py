"""Which room of rdesk may import which: the table docs/architecture.md draws, enforced.

Every module belongs to exactly one room (the longest prefix in :data:`ALLOWED`); it may import
its own room, the rooms listed for it, the standard library and third-party packages. The
dependency directions are one-way: no room may reach one that reaches back. Imports inside
functions and ``TYPE_CHECKING`` blocks count too: a lazy import is still a dependency.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import imported_names

ROOT = Path(__file__).resolve().parents[1] / "rdesk"

P, C = "rdesk.protocol", "rdesk.common"
#: room -> the other rdesk rooms it may import.
ALLOWED: dict[str, set[str]] = {
    "rdesk": set(),  # the package's __init__: the version only
    P: set(),
    C: set(),
    "rdesk.site": set(),
    "rdesk.recording": {P, C},
    "rdesk.tunnel": {P, C},
    "rdesk.client": {P, C, "rdesk.recording", "rdesk.tunnel"},
    "rdesk.client.tk": {"rdesk.client", P, C, "rdesk.recording"},
    "rdesk.host.settings": {C},
    "rdesk.host.encoding": {P, C},
    "rdesk.host.video": {"rdesk.host.encoding", P, C},
    "rdesk.host.screen": {"rdesk.host.settings", "rdesk.host.encoding", P, C},
    "rdesk.host.input": {P, C},
    "rdesk.host.security": {P, C},
    "rdesk.host.transfer": {"rdesk.host.settings", P, C},
    "rdesk.host.clipboard": {"rdesk.host.settings", P, C},
    "rdesk.host.serve": {
        "rdesk.host.settings", "rdesk.host.screen", "rdesk.host.encoding",
        "rdesk.host.security", "rdesk.host.transfer", "rdesk.host.clipboard", P, C,
        "rdesk.recording", "rdesk.site", "rdesk.host.video",
    },
    "rdesk.relay": {P, C, "rdesk.host.security", "rdesk.site"},
    "rdesk.host.relaylink": {"rdesk.relay", "rdesk.tunnel", P, C},
    "rdesk.host": {  # the package, app.py, credentials.py, banner.py, relayed.py: the wiring
        "rdesk.host.settings", "rdesk.host.screen", "rdesk.host.encoding", "rdesk.host.input",
        "rdesk.host.security", "rdesk.host.serve", "rdesk.host.relaylink", "rdesk.tunnel",
        "rdesk.host.transfer", "rdesk.host.clipboard", P, C, "rdesk.recording",
    },
    "rdesk.cli": {
        "rdesk", "rdesk.client", "rdesk.client.tk", "rdesk.host", "rdesk.host.settings",
        "rdesk.host.security", "rdesk.host.screen", "rdesk.relay", "rdesk.recording", P, C,
    },
    "rdesk.__main__": {"rdesk.cli"},
}


def room_of(module: str) -> str:
    """The room ``module`` belongs to: the longest prefix in :data:`ALLOWED`."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in ALLOWED:
            return candidate
    raise LookupError(module)


def imports_of(source: str, module: str, is_package: bool) -> list[str]:
    """Absolute names of the rdesk modules ``source`` imports."""
    return [n for n in imported_names(source, module, is_package)
            if n == "rdesk" or n.startswith("rdesk.")]


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of ``source`` (module ``module``) that its room may not make."""
    room = room_of(module)
    bad = []
    for name in imports_of(source, module, is_package):
        if name in ("rdesk", "rdesk.__version__"):
            continue  # the package root holds only the version: every room may read it
        try:
            target = room_of(name)
        except LookupError:
            bad.append(name)
            continue
        if target != room and target not in ALLOWED[room]:
            bad.append(name)
    return bad


def modules() -> list[tuple[str, Path, bool]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out.append((".".join(parts), path, is_package))
    assert len(out) > 50
    return out


@pytest.mark.parametrize(("module", "path", "is_package"), modules(), ids=lambda v: str(v))
def test_each_module_imports_only_what_its_room_may(module: str, path: Path,
                                                    is_package: bool) -> None:
    bad = violations(path.read_text(encoding="utf-8"), module, is_package)
    assert not bad, f"{module} ({room_of(module)}) may not import {bad}"


def test_every_module_has_a_room_and_every_room_a_module() -> None:
    rooms = {room_of(m) for m, _, _ in modules()}
    assert rooms == set(ALLOWED), set(ALLOWED) ^ rooms


def test_the_table_has_no_cycles() -> None:
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in ALLOWED[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    for room in ALLOWED:
        assert not reaches(room, room, {room}), f"{room} can reach itself"


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from rdesk.host.serve import server", "rdesk.host.screen.capture"),
        ("import rdesk.client.connection", "rdesk.host.serve.server"),
        ("from rdesk.host.security.tls import harden", "rdesk.client.tls"),
        ("def f():\n    from rdesk.cli import main\n", "rdesk.relay.server"),
        ("from ..serve import server", "rdesk.host.encoding.planner"),
        ("from rdesk.host import app", "rdesk.host.serve.server"),
        ("from rdesk.tunnel import keys", "rdesk.protocol.session"),
        ("import rdesk.nowhere", "rdesk.common.files"),
    ],
)
def test_the_checker_can_fail(source: str, module: str) -> None:
    assert violations(source, module), source


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from rdesk.protocol import limits", "rdesk.host.encoding.planner"),
        ("from .tiles import TILE", "rdesk.host.encoding.planner"),
        ("from rdesk.host.encoding.tiles import TILE", "rdesk.host.screen.source"),
        ("from rdesk.host.serve.server import HostServer", "rdesk.host.app"),
        ("import json\nimport numpy", "rdesk.host.encoding.tiles"),
    ],
)
def test_the_checker_accepts_what_the_table_allows(source: str, module: str) -> None:
    assert violations(source, module) == [], source
