"""``rdesk completion bash``: the generated script, run by a real bash, completes verbs, each
verb's options, choices and paths, and skips option values when it looks for the verb."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = subprocess.run([sys.executable, "-m", "rdesk", "completion", "bash"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("completion") / "rdesk.bash"
    path.write_text(result.stdout)
    return path


def _complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for the command line ``words`` (the last one being typed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
               'COMPREPLY=(); _rdesk; printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True,
                            timeout=30, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_verbs(script: Path) -> None:
    assert _complete(script, "rdesk", "sn") == ["snapshot"]
    assert {"do", "drag", "expect", "config", "completion", "host"} <= set(
        _complete(script, "rdesk", ""))
    # An option's value is not taken for the verb.
    assert _complete(script, "rdesk", "--config-dir", "sn", "sn") == ["snapshot"]


def test_options_of_the_verb(script: Path) -> None:
    assert _complete(script, "rdesk", "host", "--tls") == ["--tls-cert", "--tls-key", "--tls12"]
    viewer = _complete(script, "rdesk", "snapshot", "u", "--")
    assert "--client-cert" in viewer and "--json" in viewer and "--tls-cert" not in viewer
    assert "--cert" not in viewer  # deprecated spellings are not offered
    assert _complete(script, "rdesk", "certs", "") == sorted(
        _complete(script, "rdesk", "certs", ""))
    assert {"init", "issue", "list", "revoke"} <= set(_complete(script, "rdesk", "certs", ""))
    assert "--role" in _complete(script, "rdesk", "certs", "issue", "--")


def test_choices_and_paths(script: Path, tmp_path: Path) -> None:
    assert _complete(script, "rdesk", "click", "u", "1", "2", "--button", "") == [
        "left", "middle", "right"]
    assert _complete(script, "rdesk", "certs", "issue", "a", "--role", "") == ["control", "view"]
    (tmp_path / "pass.txt").write_text("x")
    assert _complete(script, "rdesk", "snapshot", "u", "--password-file", "pa",
                     cwd=tmp_path) == ["pass.txt"]
    assert _complete(script, "rdesk", "host", "--port", "", cwd=tmp_path) == []
