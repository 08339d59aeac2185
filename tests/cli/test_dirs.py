"""Where rdesk's files live without ``--config-dir``: the platform's directories
(platformdirs), and the directory earlier versions used, kept while it holds their files.
The CLI runs as a subprocess with ``HOME`` in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rdesk.common import dirs

PIN = "SHA256:" + "A" * 43


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _rdesk(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    return subprocess.run([sys.executable, "-m", "rdesk", *args], capture_output=True,
                          text=True, timeout=60, env={**env, "HOME": str(home)},
                          stdin=subprocess.DEVNULL, check=False)


def test_a_fresh_user_gets_the_platform_directories(home: Path) -> None:
    assert dirs.data_dir() == home / ".local" / "share" / "rdesk"
    assert dirs.config_file() == home / ".config" / "rdesk" / "config.toml"
    result = _rdesk(home, "relay", "use", "wss://relay.example:8443", "--fingerprint", PIN)
    assert result.returncode == 0, result.stderr
    assert (home / ".local" / "share" / "rdesk" / "viewer-relay").exists()
    assert not (home / ".config" / "rdesk").exists()


def test_the_directory_of_earlier_versions_is_kept_while_it_holds_their_files(
    home: Path,
) -> None:
    old = home / ".config" / "rdesk"
    old.mkdir(parents=True)
    (old / "known_hosts").write_text(f"h:1 {PIN}\n")
    assert dirs.data_dir() == old
    result = _rdesk(home, "relay", "use", "wss://relay.example:8443")
    assert result.returncode == 0, result.stderr
    assert (old / "viewer-relay").exists()
    assert not (home / ".local" / "share" / "rdesk").exists()


def test_the_config_file_is_the_platforms_and_config_dir_still_overrides(
    home: Path, tmp_path: Path,
) -> None:
    config = home / ".config" / "rdesk" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[viewer]\ntimeout = 41\n")
    shown = _rdesk(home, "config", "show")
    assert shown.returncode == 0, shown.stderr
    assert f"# config file: {config}" in shown.stdout and "timeout = 41" in shown.stdout
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "config.toml").write_text("[viewer]\ntimeout = 42\n")
    shown = _rdesk(home, "--config-dir", str(other), "config", "show")
    assert "timeout = 42" in shown.stdout and "timeout = 41" not in shown.stdout
    shown = _rdesk(home, "config", "show", "--config", str(other / "config.toml"))
    assert "timeout = 42" in shown.stdout
