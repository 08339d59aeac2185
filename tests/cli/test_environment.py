"""Settings from the environment (``RDESK_HOST_*``, ``RDESK_RELAY_*``) and password hashes
from mounted files (``--password-hash-file``): what a container is configured with."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from rdesk.cli import build_parser
from rdesk.cli.common import UsageError
from rdesk.cli.config import apply_config
from rdesk.cli.host import host_settings
from rdesk.host.credentials import load_credentials
from rdesk.host.security.passwords import PasswordFileError, hash_password
from rdesk.host.settings import HostSettings


def _parse(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str,
           config: Path | None = None) -> argparse.Namespace:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = build_parser()
    full = [*(["--config", str(config)] if config else []), *argv, "--config-dir", "/cfg"]
    return apply_config(parser, parser.parse_args(full), full)


def test_host_variables_set_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    made = host_settings(_parse(monkeypatch, {
        "RDESK_HOST_VIRTUAL": "320x240", "RDESK_HOST_NO_LISTEN": "true",
        "RDESK_HOST_RELAY": "wss://relay.example:8443",
        "RDESK_HOST_RELAY_TOKEN_FILE": "/run/secrets/rdesk/relay-token",
        "RDESK_HOST_ALLOW_ORIGIN": "https://a.example, https://b.example",
        "RDESK_HOST_TLS12": "0", "RDESK_HOST_PASSWORD_HASH_FILE": "/run/secrets/p"}, "host"))
    assert made.virtual == (320, 240) and made.allow_tls12 is False
    assert made.relay_url == "wss://relay.example:8443" and made.listen is False
    assert made.relay_token_file == Path("/run/secrets/rdesk/relay-token")
    assert made.allowed_origins == ("https://a.example", "https://b.example")
    assert made.password_hash_file == Path("/run/secrets/p")


def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    made = host_settings(_parse(monkeypatch, {
        "RDESK_HOST_RELAY": "wss://relay.example:8443", "RDESK_HOST_RELAY_FINGERPRINT": "",
        "RDESK_HOST_PORT": " "}, "host"))
    assert (made.relay_fingerprint, made.port) == (None, 7900)


def test_command_line_beats_environment_beats_file(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[host]\nport = 7901\nmax-fps = 20\n")
    env = {"RDESK_HOST_PORT": "7902"}
    assert host_settings(_parse(monkeypatch, env, "host", config=config)).port == 7902
    assert host_settings(_parse(monkeypatch, env, "host", config=config)).max_fps == 20
    assert host_settings(_parse(monkeypatch, env, "host", "--port", "7903",
                                config=config)).port == 7903


def test_relay_variables_set_relay_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _parse(monkeypatch, {"RDESK_RELAY_PORT": "9443", "RDESK_RELAY_GRACE": "45",
                                "RDESK_RELAY_PUBLIC_URL": "wss://10.0.0.7:9443",
                                "RDESK_RELAY_OPEN": "yes"}, "relay")
    assert (args.port, args.grace, args.public_url, args.open) == (
        9443, 45.0, "wss://10.0.0.7:9443", True)
    # The viewers' RDESK_RELAY (a relay URL) is not one of the relay's settings.
    monkeypatch.delenv("RDESK_RELAY_PORT")
    assert _parse(monkeypatch, {"RDESK_RELAY": "wss://r.example"}, "relay").port == 8443


@pytest.mark.parametrize(("env", "needle"), [
    ({"RDESK_HOST_NOSUCH": "1"}, "environment RDESK_HOST_NOSUCH: rdesk host has no option "
                                 "--nosuch"),
    ({"RDESK_HOST_PORT": "99999"}, "environment RDESK_HOST_PORT: port"),
    ({"RDESK_HOST_TLS12": "maybe"}, "RDESK_HOST_TLS12: must be true or false"),
    ({"RDESK_HOST_CONSENT": "never"}, "consent must be one of"),
    ({"RDESK_HOST_CONFIG_DIR": "/x"}, "has no option --config-dir"),
    ({"RDESK_RELAY_GRACE": "-1"}, "RDESK_RELAY_GRACE: grace"),
])
def test_bad_variables_are_one_line_errors(monkeypatch: pytest.MonkeyPatch,
                                           env: dict[str, str], needle: str) -> None:
    verb = "relay" if any(name.startswith("RDESK_RELAY_") for name in env) else "host"
    with pytest.raises(UsageError) as caught:
        _parse(monkeypatch, env, verb)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_host_variables_do_not_touch_other_verbs(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _parse(monkeypatch, {"RDESK_HOST_NOSUCH": "1"}, "snapshot", "h:1", "-o", "s.png")
    assert args.url == "h:1"


def test_password_hash_files(tmp_path: Path) -> None:
    (tmp_path / "control").write_text(hash_password("control-pw") + "\n")
    (tmp_path / "view").write_text(hash_password("view-pw") + "\n")
    settings = HostSettings(config_dir=tmp_path / "cfg", password_hash_file=tmp_path / "control",
                            view_password_hash_file=tmp_path / "view")
    creds, how = load_credentials(settings)
    assert [creds.check(s) for s in ("control-pw", "view-pw", "x")] == ["control", "view", None]
    assert f"the one hashed in {tmp_path / 'control'}" in how
    assert f"the one hashed in {tmp_path / 'view'}" in how
    # A hash file that was named must be there: no silent one-time password instead.
    missing = dataclasses.replace(settings, password_hash_file=tmp_path / "gone")
    with pytest.raises(PasswordFileError, match="gone"):
        load_credentials(missing)


def test_password_file_and_hash_file_exclude_each_other(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["host", "--password-file", "a", "--password-hash-file", "b"])
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
