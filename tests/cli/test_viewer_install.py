"""A viewer-only install (``pip install rdesk``) pulls no host-only library, and nothing on
the viewer side imports one; ``rdesk host`` without the host extra says so in one line.

The viewer verbs that need a host are run without the host extra in
tests/e2e/test_viewer_only.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from rdesk.cli.common import HOST_ONLY_MODULES
from tests.cli.viewer_only import REPO, rdesk_without_host_extra
from tests.cli.without_host_extra import BLOCKED
from tests.recordings import record_session

#: The import name of each distribution of the host extra.
MODULE_OF = {"mss": "mss", "numpy": "numpy", "pynput": "pynput", "python-xlib": "Xlib",
             "simplejpeg": "simplejpeg"}
#: In the host extra but not host-only: PyAV encodes video on a host, and a viewer that has it
#: decodes video (rdesk/client/video.py); neither needs it (tiles then).
SHARED = {"av"}

#: Imports every module of the viewer side, then prints the host-only ones now loaded.
PROBE = """
import importlib, json, pkgutil, sys
import rdesk, rdesk.cli
rdesk.cli.build_parser()
for package in ("rdesk.cli", "rdesk.client", "rdesk.protocol", "rdesk.recording",
                "rdesk.common"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        importlib.import_module(info.name)
EXTRA
host_only = {"mss", "Xlib", "pynput", "numpy", "simplejpeg"}
allowed = {"rdesk.host", "rdesk.host.settings"}
print(json.dumps(sorted(name for name in sys.modules if name.partition(".")[0] in host_only
                        or (name.startswith("rdesk.host") and name not in allowed))))
"""


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def test_pyproject_puts_host_libraries_in_the_host_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    host = {_name(r) for r in extras["host"]}
    assert {"pillow", "websockets"} <= base
    assert not base & set(MODULE_OF), base
    assert host == set(MODULE_OF) | SHARED
    assert {MODULE_OF[name] for name in host - SHARED} == BLOCKED == set(HOST_ONLY_MODULES)
    assert "rdesk[host]" in extras["test"]


def _probe(extra: str = "") -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.replace("EXTRA", extra)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_the_viewer_side_imports_no_host_library() -> None:
    assert _probe() == []


def test_the_probe_sees_host_libraries() -> None:
    loaded = _probe("import rdesk.host.app")
    assert {"Xlib", "mss", "numpy", "simplejpeg", "rdesk.host.screen.xshm",
            "rdesk.host.screen.damage"} <= set(loaded), loaded


@pytest.mark.parametrize("where", [["--display", ":0"], ["--virtual", "320x240"]])
def test_rdesk_host_without_the_host_extra(tmp_path: Path, where: list[str]) -> None:
    run = rdesk_without_host_extra(tmp_path, "host", *where, "--port", "0")
    assert run.result.returncode == 1, run.result
    assert run.result.stderr.splitlines() == [
        "rdesk: error: rdesk host needs the host extra: pip install 'rdesk[host]'"
    ]
    assert run.result.stdout == ""


def test_the_blocker_blocks(tmp_path: Path) -> None:
    """The runner really refuses the host extra: code that needs it fails there."""
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; from tests.cli.without_host_extra import RefuseHostExtra\n"
         "sys.meta_path.insert(0, RefuseHostExtra(None))\n"
         "import rdesk.host.screen.capture"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'mss'" in done.stderr


def test_offline_verbs_without_the_host_extra(tmp_path: Path) -> None:
    help_ = rdesk_without_host_extra(tmp_path, "--help")
    assert help_.result.returncode == 0 and "snapshot" in help_.result.stdout
    assert help_.blocked == []

    secret = tmp_path / "secret.txt"
    secret.write_text("a fine password\n")
    passwd = rdesk_without_host_extra(tmp_path, "passwd", "--password-file", str(secret))
    assert passwd.result.returncode == 0, passwd.result.stderr
    assert (tmp_path / "viewer-config" / "password").exists()
    assert passwd.blocked == []

    certs = rdesk_without_host_extra(tmp_path, "certs", "init")
    assert certs.result.returncode == 0, certs.result.stderr
    assert certs.blocked == []

    recording, _ = record_session(tmp_path)
    play = rdesk_without_host_extra(tmp_path, "play", str(recording),
                                    "--export-png", str(tmp_path / "frames"))
    assert play.result.returncode == 0, play.result.stderr
    assert sorted((tmp_path / "frames").glob("*.png"))
    assert play.blocked == []


def test_a_viewer_error_imports_no_host_library(tmp_path: Path) -> None:
    """The error path too: a connection refused is one line, with no host module looked up."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = rdesk_without_host_extra(
        tmp_path, "snapshot", f"127.0.0.1:{port}", "--accept-new", "-o", str(tmp_path / "x.png"),
        env={**os.environ, "RDESK_PASSWORD": "x"},
    )
    assert run.result.returncode == 6  # exits.UNREACHABLE
    lines = run.result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rdesk: error: ") and "cannot reach" in lines[0]
    assert run.blocked == []
