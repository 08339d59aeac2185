"""Issue 18's command line: renamed flags (old spellings warn), ``~`` in paths, exit codes,
help with defaults and examples, the ``do`` grammar and the config file."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rdesk.cli import build_parser, exits, main
from rdesk.cli.common import UsageError
from rdesk.cli.config import apply_config, load_config
from rdesk.cli.do import parse_actions, read_options
from rdesk.cli.host import host_settings
from rdesk.client.errors import AuthenticationFailed, ConnectError
from rdesk.client.known_hosts import HostKeyMismatch, UnknownHostKey


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# --- renamed flags -----------------------------------------------------------------------------


def test_host_tls_cert_both_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    new = host_settings(_parse("host", "--tls-cert", "/c.pem", "--tls-key", "/k.pem",
                               "--config-dir", "/cfg"))
    assert capsys.readouterr().err == ""
    old = host_settings(_parse("host", "--cert", "/c.pem", "--key", "/k.pem",
                               "--config-dir", "/cfg"))
    assert (new.cert, new.key) == (old.cert, old.key) == (Path("/c.pem"), Path("/k.pem"))
    assert capsys.readouterr().err.splitlines() == [
        "rdesk: warning: --cert is deprecated; use --tls-cert",
        "rdesk: warning: --key is deprecated; use --tls-key",
    ]


def test_viewer_client_cert_both_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    new = _parse("snapshot", "h:1", "-o", "x.png", "--client-cert", "a.crt",
                 "--client-key", "a.key")
    assert capsys.readouterr().err == ""
    old = _parse("snapshot", "h:1", "-o", "x.png", "--cert", "a.crt", "--key", "a.key")
    assert (new.client_cert, new.client_key) == (old.client_cert, old.client_key) == (
        Path("a.crt"), Path("a.key"))
    assert "--cert is deprecated; use --client-cert" in capsys.readouterr().err


def test_certs_ca_dir_both_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parse("certs", "list", "--ca-dir", "/ca").ca_dir == Path("/ca")
    assert capsys.readouterr().err == ""
    assert _parse("certs", "list", "--dir", "/ca").ca_dir == Path("/ca")
    assert capsys.readouterr().err.strip() == "rdesk: warning: --dir is deprecated; use --ca-dir"
    assert _parse("certs", "list").ca_dir is None


def test_the_old_spellings_are_hidden_from_help() -> None:
    result = subprocess.run([sys.executable, "-m", "rdesk", "host", "--help"], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    text = result.stdout
    assert "--tls-cert" in text and "--cert " not in text and "--key " not in text


# --- ~ in paths --------------------------------------------------------------------------------


def test_tilde_is_expanded_in_every_path_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/tester")
    args = _parse("snapshot", "h:1", "-o", "~/s.png", "--password-file", "~/.rdesk-pass",
                  "--client-cert", "~/a.crt", "--config-dir", "~/cfg")
    assert (args.output, args.password_file, args.client_cert, args.config_dir) == (
        Path("/home/tester/s.png"), Path("/home/tester/.rdesk-pass"),
        Path("/home/tester/a.crt"), Path("/home/tester/cfg"))
    host = _parse("host", "--password-file", "~/p", "--audit-log", "~/a.jsonl", "--record",
                  "~/rec", "--ca-dir", "~/ca", "--tls-cert", "~/c")
    assert {host.password_file, host.audit_log, host.record, host.ca_dir, host.tls_cert} == {
        Path("/home/tester") / n for n in ("p", "a.jsonl", "rec", "ca", "c")}
    assert _parse("certs", "issue", "bob", "--role", "view", "--out", "~/o").out == Path(
        "/home/tester/o")


# --- exit codes --------------------------------------------------------------------------------


def _raised(outer: Exception, inner: BaseException | None) -> Exception:
    try:
        try:
            if inner is not None:
                raise inner
            raise outer
        except BaseException:
            raise outer from None
    except Exception as exc:
        return exc


@pytest.mark.parametrize(("exc", "code"), [
    (AuthenticationFailed("h: authentication failed (wrong password)"), exits.AUTH_FAILED),
    (HostKeyMismatch("h", 1, "SHA256:" + "A" * 43, "SHA256:" + "B" * 43, pinned=True),
     exits.HOST_KEY_CHANGED),
    (UnknownHostKey("h", 1, "SHA256:" + "A" * 43), exits.HOST_KEY_UNKNOWN),
    (ConnectError("h refused the connection: too many viewers"), exits.REFUSED),
    (ConnectError("h is not an rdesk host (HTTP 404)"), exits.ERROR),
    (UsageError("x"), exits.ERROR),
    (UsageError("x", exits.NO_MATCH), exits.NO_MATCH),
])
def test_exit_code(exc: Exception, code: int) -> None:
    assert exits.exit_code(_raised(exc, None)) == code


@pytest.mark.parametrize("cause", [ConnectionRefusedError(111, "refused"), asyncio.TimeoutError()])
def test_unreachable_is_told_by_the_cause(cause: BaseException) -> None:
    assert exits.exit_code(_raised(ConnectError("cannot reach h"), cause)) == exits.UNREACHABLE


def test_codes_are_distinct() -> None:
    codes = [exits.OK, exits.ERROR, exits.USAGE, exits.AUTH_FAILED, exits.HOST_KEY_CHANGED,
             exits.HOST_KEY_UNKNOWN, exits.UNREACHABLE, exits.REFUSED, exits.NO_MATCH]
    assert len(set(codes)) == len(codes)


# --- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("verb", "needles"), [
    ("host", ["(default: 7900)", "(default: 80)", "(default: auto)", "examples:",
              "rdesk host --virtual 1280x720"]),
    ("snapshot", ["(default: 15.0)", "examples:", "rdesk snapshot wss://"]),
    ("do", ["(default: 30.0)", "(default: 0.0)", "rdesk do wss://desk:7900 type hello"]),
    ("expect", ["(default: (0, 0))", "exit 8"]),
])
def test_help_shows_examples_and_defaults(verb: str, needles: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([verb, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in needles:
        assert " ".join(needle.split()) in text, (needle, text)
    assert "(default: None)" not in text and "(default: False)" not in text


# --- rdesk do's grammar ------------------------------------------------------------------------


def test_actions_in_order() -> None:
    actions = parse_actions(["type", "hi", "key", "ctrl+l", "keydown", "shift", "click", "1",
                             "2", "keyup", "shift", "drag", "1", "2", "3", "4", "scroll", "5",
                             "6", "-3", "pause", "0.5", "snapshot", "-o", "~/s.png",
                             "expect", "r.png", "7", "8"])
    assert [a.name for a in actions] == ["type", "key", "keydown", "click", "keyup", "drag",
                                         "scroll", "pause", "snapshot", "expect"]
    assert actions[0].keysyms == (ord("h"), ord("i"))
    assert actions[3].ints == (1, 2) and actions[5].ints == (1, 2, 3, 4)
    assert actions[6].ints == (5, 6, -3) and actions[7].seconds == 0.5
    assert actions[8].file == Path("~/s.png").expanduser()
    assert (actions[9].file, actions[9].ints) == (Path("r.png"), (7, 8))


@pytest.mark.parametrize(("tokens", "needle", "code"), [
    ([], "no actions", exits.USAGE),
    (["jump", "1"], "unknown action 'jump'", exits.USAGE),
    (["click", "1"], "click needs 2 argument(s)", exits.USAGE),
    (["move", "1", "-4"], "move:", exits.USAGE),
    (["pause", "soon"], "not a number", exits.USAGE),
    (["key", "rdesk.example"], "unknown key 'rdesk.example'", exits.ERROR),
])
def test_bad_actions(tokens: list[str], needle: str, code: int) -> None:
    with pytest.raises(UsageError) as caught:
        parse_actions(tokens)
    assert needle in str(caught.value) and caught.value.code == code


def test_key_with_a_word_says_to_type_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rdesk", "key", "127.0.0.1:1", "ctrl+l", "rdesk.example",
         "Return"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "unknown key 'rdesk.example'" in line and "rdesk type" in line


# --- the config file ---------------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def _with_config(path: Path, *argv: str) -> argparse.Namespace:
    parser = build_parser()
    full = ["--config", str(path), *argv]
    args = parser.parse_args(full)
    return apply_config(parser, args, full)


def test_host_section_sets_defaults_and_flags_win(tmp_path: Path) -> None:
    path = _config(tmp_path, '[host]\nport = 7901\nvirtual = "320x240"\nconsent = "ask"\n'
                             'allow-origin = ["https://a.example"]\naudit-log = "~/a.jsonl"\n'
                             'tls12 = true\n')
    args = _with_config(path, "host", "--config-dir", "/cfg")
    made = host_settings(args)
    assert (made.port, made.virtual, made.consent, made.allow_tls12) == (7901, (320, 240),
                                                                         "ask", True)
    assert made.allowed_origins == ("https://a.example",)
    assert made.audit_log == Path("~/a.jsonl").expanduser()
    assert host_settings(_with_config(path, "host", "--port", "7902", "--config-dir",
                                      "/cfg")).port == 7902


def test_viewer_section_serves_each_viewer_verb(tmp_path: Path) -> None:
    path = _config(tmp_path, '[viewer]\ntimeout = 9\nscale = "1"\ntolerance = 4\n')
    snap = _with_config(path, "snapshot", "h:1", "-o", "s.png", "--config-dir", "/cfg")
    assert snap.timeout == 9.0 and not hasattr(snap, "scale")
    assert _with_config(path, "connect", "h:1", "--config-dir", "/cfg").scale == "1"
    assert _with_config(path, "expect", "h:1", "r.png", "--config-dir", "/cfg").tolerance == 4.0
    bad = _config(tmp_path, "[viewer]\nnosuch = 1\n")
    with pytest.raises(UsageError, match="no viewer verb has the option nosuch"):
        _with_config(bad, "snapshot", "h:1", "-o", "s.png", "--config-dir", "/cfg")


def test_an_old_spelling_warns_once_with_a_config(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, "[host]\nport = 7901\n")
    args = _with_config(path, "host", "--cert", "/c.pem", "--config-dir", "/cfg")
    assert (args.tls_cert, args.port) == (Path("/c.pem"), 7901)
    assert capsys.readouterr().err.splitlines() == [
        "rdesk: warning: --cert is deprecated; use --tls-cert"]


def test_saved_host(tmp_path: Path) -> None:
    path = _config(tmp_path, '[viewer]\ntimeout = 40\n[hosts.work]\nurl = "wss://d.example:7900"'
                             '\nfingerprint = "SHA256:abc"\npassword-file = "~/.p"\n'
                             'client-cert = "/a.crt"\n')
    args = _with_config(path, "snapshot", "work", "-o", "s.png", "--config-dir", "/cfg")
    assert (args.url, args.fingerprint, args.password_file, args.client_cert, args.timeout) == (
        "wss://d.example:7900", "SHA256:abc", Path("~/.p").expanduser(), Path("/a.crt"), 40.0)
    given = _with_config(path, "do", "work", "--fingerprint", "SHA256:xyz", "type", "x",
                         "--config-dir", "/cfg")
    assert read_options(given) == ["type", "x"]  # what `rdesk do` reads among its actions
    assert (given.url, given.fingerprint) == ("wss://d.example:7900", "SHA256:xyz")
    other = _with_config(path, "snapshot", "wss://e.example:1", "-o", "s.png", "--config-dir",
                         "/cfg")
    assert (other.url, other.fingerprint) == ("wss://e.example:1", None)


def test_saved_host_by_relay_id_and_by_ca_file(tmp_path: Path) -> None:
    path = _config(tmp_path, '[viewer]\nca-file = "~/all.pem"\n'
                             '[hosts.home]\nid = "abcd efgh jkmnp"\nrelay = "wss://r.example"\n'
                             'relay-fingerprint = "SHA256:r"\n'
                             '[hosts.office]\nurl = "wss://o.example:1"\nca-file = "~/o.pem"\n')
    home = _with_config(path, "snapshot", "home", "-o", "s.png", "--config-dir", "/cfg")
    assert (home.url, home.relay, home.relay_fingerprint) == (
        "ABCD-EFGH-JKMNP", "wss://r.example", "SHA256:r")  # the ID read canonical
    office = _with_config(path, "snapshot", "office", "-o", "s.png", "--config-dir", "/cfg")
    assert (office.url, office.ca_file) == ("wss://o.example:1", Path("~/o.pem").expanduser())
    other = _with_config(path, "type", "h:1", "x", "--config-dir", "/cfg")
    assert other.ca_file == Path("~/all.pem").expanduser()  # [viewer] for every viewer verb


@pytest.mark.parametrize(("text", "needle"), [
    ("[hots]\n", "unknown section [hots]"),
    ("[host]\nport = 99999\n", "port"),
    ("[host]\nnosuch = 1\n", "no such option: nosuch"),
    ("[host]\nconsent = \"maybe\"\n", "consent must be one of"),
    ("[hosts.w]\nfingerprint = \"x\"\n", "[hosts.w] needs a url or an id"),
    ("[hosts.w]\nurl = \"h:1\"\nid = \"ABCD-EFGH-JKMNP\"\n", "needs a url or an id"),
    ("[hosts.w]\nid = \"ABCD-EFGH\"\n", "[hosts.w]: id: a host ID is 13 symbols"),
    ("[host\n", "config file"),
])
def test_bad_config_is_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        _with_config(path, "host", "--config-dir", "/cfg")
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_missing_config(tmp_path: Path) -> None:
    assert load_config(tmp_path / "none.toml", required=False).hosts == {}
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "none.toml", required=True)


def test_config_show_says_where_each_value_comes_from(tmp_path: Path) -> None:
    path = _config(tmp_path, '[host]\nport = 7901\n[viewer]\nscale = "1"\n'
                             '[hosts.work]\nurl = "wss://d:1"\n')
    result = subprocess.run(
        [sys.executable, "-m", "rdesk", "--config", str(path), "config", "show"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"port = 7901    # {path}" in lines
    assert "quality = 80    # default" in lines
    assert f'scale = "1"    # {path}' in lines and "tolerance = 0.0    # default" in lines
    assert lines.index("[viewer]") < lines.index("timeout = 15.0    # default")
    assert "[hosts.work]" in lines and f'url = "wss://d:1"    # {path}' in lines
