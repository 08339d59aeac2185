"""The options of every verb (``--config-dir``, ``-v``/``--verbose``, ``--version``) work
before the verb and after it; a bad command line is still argparse's one-line error, exit 2.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdesk import __version__
from rdesk.cli import build_parser, main
from tests.xserver import Xvfb

#: One command line per verb (and certs' own verbs), without the common options.
VERBS = {
    "host": ["host", "--display", ":5"],
    "passwd": ["passwd", "--view"],
    "snapshot": ["snapshot", "wss://example.test:7900", "-o", "x.png"],
    "watch": ["watch", "example.test:7900", "--json"],
    "type": ["type", "example.test:7900", "hello"],
    "key": ["key", "example.test:7900", "ctrl+c"],
    "move": ["move", "example.test:7900", "1", "2"],
    "click": ["click", "example.test:7900", "1", "2"],
    "scroll": ["scroll", "example.test:7900", "1", "2", "--dy", "3"],
    "certs list": ["certs", "list"],
    "play": ["play", "session.rdrec"],
    "connect": ["connect", "example.test:7900"],
    "do": ["do", "example.test:7900", "type", "hi", "snapshot", "-o", "x.png"],
    "drag": ["drag", "example.test:7900", "1", "2", "3", "4"],
    "expect": ["expect", "example.test:7900", "ref.png", "--at", "1,2"],
    "config": ["config", "show"],
    "completion": ["completion", "bash"],
    # Verbs with verbs of their own.
    "clip get": ["clip", "get", "example.test:7900"],
    "clip set": ["clip", "set", "example.test:7900", "some text"],
    "relay token list": ["relay", "token", "list"],
    "relay use": ["relay", "use", "wss://relay.test"],
    "service install": ["service", "install", "--print"],
    "put": ["put", "example.test:7900", "a.txt"],
    "ls": ["ls", "example.test:7900"],
}


def _rdesk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rdesk", *args], capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, env=env if env is not None else os.environ.copy(),
    )


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("where", ["before", "after"])
def test_config_dir_and_verbose_either_side_of_the_verb(verb: str, where: str) -> None:
    common = ["--config-dir", "/tmp/somewhere", "-v"]
    argv = [*common, *VERBS[verb]] if where == "before" else [*VERBS[verb], *common]
    args = build_parser().parse_args(argv)
    assert args.config_dir == Path("/tmp/somewhere")
    assert args.verbose is True


@pytest.mark.parametrize("verb", VERBS)
def test_defaults_when_not_given(verb: str) -> None:
    args = build_parser().parse_args(VERBS[verb])
    assert args.config_dir is None and args.verbose is False


def _parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield name, child
                yield from ((f"{name} {sub}", p) for sub, p in _parsers(child))


def test_every_verb_at_every_depth_takes_the_common_options() -> None:
    """Each verb's parser, nested ones too (``clip set``: ``--config-dir`` after it was
    "unrecognized arguments"), declares the options of every verb."""
    found = dict(_parsers(build_parser()))
    assert {"clip set", "relay token create", "service install", "certs issue"} <= set(found)
    lacking = [name for name, p in found.items() if "--config-dir" not in p._option_string_actions]
    assert lacking == []


def test_long_verbose_after_the_verb() -> None:
    assert build_parser().parse_args([*VERBS["type"], "--verbose"]).verbose is True


def test_after_the_verb_wins_and_before_is_not_reset() -> None:
    parser = build_parser()
    both = parser.parse_args(["--config-dir", "/a", *VERBS["host"], "--config-dir", "/b"])
    assert both.config_dir == Path("/b")
    before = parser.parse_args(["--config-dir", "/a", "-v", *VERBS["host"]])
    assert before.config_dir == Path("/a") and before.verbose is True
    # The certs verbs take them after their own verb too.
    nested = parser.parse_args(["certs", "--config-dir", "/c", "issue", "bob", "--role", "view",
                                "--config-dir", "/d"])
    assert nested.config_dir == Path("/d") and nested.certs_command == "issue"


def test_passwd_writes_into_the_config_dir_given_after_the_verb(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("a fine password\n")
    config = tmp_path / "cfg"
    assert main(["passwd", "--password-file", str(secret), "--config-dir", str(config)]) == 0
    assert (config / "password").read_text().startswith("scrypt$")


def test_certs_init_uses_the_config_dir_given_after_the_verbs(tmp_path: Path) -> None:
    result = _rdesk("certs", "init", "--config-dir", str(tmp_path / "cfg"), "-v")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cfg" / "ca" / "ca.crt").exists()


def test_verbose_after_the_verb_logs(xvfb: Xvfb, tmp_path: Path) -> None:
    """``-v`` after the verb turns logging on: the host's INFO line about its capture backend
    appears before it stops on a port already in use."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        host = ["host", "--display", xvfb.display, "--capture", "mss", "--bind", "127.0.0.1",
                "--port", str(busy.getsockname()[1]), "--config-dir", str(tmp_path)]
        quiet = _rdesk(*host)
        loud = _rdesk(*host, "-v")
    assert quiet.returncode == loud.returncode == 1, (quiet.stderr, loud.stderr)
    assert quiet.stderr.splitlines()[-1] == loud.stderr.splitlines()[-1]
    assert "already in use" in loud.stderr.splitlines()[-1]
    assert "INFO" not in quiet.stderr
    assert "rdesk: INFO: capture backend mss: polling" in loud.stderr, loud.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_version_either_side(where: str) -> None:
    play = ["play", "x.rdrec"]
    result = _rdesk(*(["--version", *play] if where == "before" else [*play, "--version"]))
    assert result.returncode == 0 and result.stdout.strip() == f"rdesk {__version__}"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["host", "--nosuch"], "rdesk: error: unrecognized arguments: --nosuch"),
        (["--nosuch", "host"], "rdesk: error: unrecognized arguments: --nosuch"),
        (["snapshot", "x:1", "-o", "x.png", "--config-dir"],
         "rdesk snapshot: error: argument --config-dir: expected one argument"),
        (["type", "x:1", "hi", "--verbose=yes"],
         "rdesk type: error: argument -v/--verbose: ignored explicit argument 'yes'"),
        (["certs", "list", "--nosuch"], "rdesk: error: unrecognized arguments: --nosuch"),
        (["nosuch"], "rdesk: error: argument COMMAND: invalid choice: 'nosuch'"),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    result = _rdesk(*argv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert result.stderr.splitlines()[-1] == errors[0]
    assert result.stderr.startswith("usage: rdesk")
