"""The config file (TOML, docs/config.md): defaults for the verbs' flags, and saved hosts.

``CONFIG_DIR/config.toml`` (``--config FILE`` instead) holds::

    [host]                  # any `rdesk host` flag, by its long name
    port = 7901
    consent = "ask"

    [viewer]                # any flag of the viewer verbs (snapshot, type, do, connect...)
    timeout = 30

    [hosts.work]            # a saved host, like ssh_config's Host: `rdesk connect work`
    url = "wss://desk.example:7900"
    fingerprint = "SHA256:..."
    password-file = "~/.rdesk-pass"
    client-cert = "~/certs/alice.crt"
    client-key = "~/certs/alice.key"

    [hosts.home]            # a host reached by its ID through a relay: `rdesk snapshot home`
    id = "ABCD-EFGH-JKMNP"
    relay = "wss://relay.example:8443"
    relay-fingerprint = "SHA256:..."

A value is read with the flag's own parser (so ``virtual = "1280x720"`` and ``~`` in paths
work as on the command line) and becomes that flag's default: a flag given on the command line
wins. ``rdesk config show`` prints the merged settings and where each came from.

The environment sits between the two (for containers): ``RDESK_HOST_<OPTION>`` sets a flag of
``rdesk host`` and ``RDESK_RELAY_<OPTION>`` one of ``rdesk relay`` (the long name in upper
case, ``-`` as ``_``: ``RDESK_HOST_RELAY_TOKEN_FILE``). It wins over the file and loses to the
command line; on/off flags take ``true``/``false`` (``1``/``0``, ``yes``/``no``), repeatable
ones a comma-separated list, an empty variable counts as unset, and an unknown name is an
error.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from rdesk.cli.common import DeprecatedAlias, UsageError, add_verb
from rdesk.common import dirs
from rdesk.protocol.hostid import parse_host_id

__all__ = ["CONFIG_FILE", "Config", "add_parsers", "apply_config", "load_config"]

CONFIG_FILE = dirs.CONFIG_FILE
#: Verbs the ``[viewer]`` section and saved hosts apply to: those with a host URL.
VIEWER_VERBS = ("snapshot", "watch", "type", "key", "move", "click", "scroll", "do", "drag",
                "expect", "connect")
#: What a saved host may say (flags of the viewer verbs), besides ``url``.
HOST_KEYS = ("fingerprint", "password-file", "client-cert", "client-key", "accept-new",
             "timeout", "ca-file", "relay", "relay-fingerprint")
_MAX_CONFIG = 1 << 20
#: The environment's prefix for each verb whose flags it may set.
ENV_PREFIXES = {"host": "RDESK_HOST_", "relay": "RDESK_RELAY_"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
#: Options of every verb: not settings of the file.
_COMMON = ("help", "version", "config_dir", "config", "verbose", "config_default")


@dataclass
class Config:
    """The file's sections as read (raw TOML values), and where they came from."""

    path: Path | None = None
    host: dict[str, Any] = field(default_factory=dict)
    viewer: dict[str, Any] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_config(path: Path, *, required: bool) -> Config:
    """Read ``path``; a missing file is an empty config unless ``required`` (``--config``).

    Raises :class:`UsageError` (one line naming the file) for bad TOML or an unknown section.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_CONFIG + 1)
    except FileNotFoundError:
        if required:
            raise UsageError(f"config file {path} does not exist") from None
        return Config()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_CONFIG:
        raise UsageError(f"config file {path} is larger than {_MAX_CONFIG} bytes")
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file {path}: {exc}") from None
    unknown = set(table) - {"host", "viewer", "hosts"}
    if unknown:
        raise UsageError(f"config file {path}: unknown section [{sorted(unknown)[0]}]")
    config = Config(path, dict(table.get("host", {})), dict(table.get("viewer", {})))
    for name, block in table.get("hosts", {}).items():
        if not isinstance(block, dict) or len({"url", "id"} & set(block)) != 1:
            raise UsageError(f"config file {path}: [hosts.{name}] needs a url or an id")
        extra = set(block) - {"url", "id", *HOST_KEYS}
        if extra:
            raise UsageError(f"config file {path}: [hosts.{name}]: unknown key {sorted(extra)[0]}")
        if "id" in block:
            try:
                block["id"] = parse_host_id(str(block["id"]))
            except ValueError as exc:
                raise UsageError(f"config file {path}: [hosts.{name}]: id: {exc}") from None
        config.hosts[name] = dict(block)
    return config


def _verb_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option(parser: argparse.ArgumentParser, key: str) -> argparse.Action | None:
    flag = "--" + key.replace("_", "-")
    for action in parser._actions:
        if flag in action.option_strings and action.help != argparse.SUPPRESS:
            return action
    return None


def _convert(action: argparse.Action, key: str, value: Any, where: str) -> Any:
    """``value`` from the file as the flag's parser makes it; one-line error if it cannot."""
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {key} must be true or false")
        return value
    items = value if isinstance(action, argparse._AppendAction) else [value]
    if not isinstance(items, list):
        raise UsageError(f"{where}: {key} must be a list")
    out = []
    for item in items:
        if isinstance(item, (dict, list)):
            raise UsageError(f"{where}: {key} must be a single value")
        text = str(item).lower() if isinstance(item, bool) else str(item)
        try:
            made = action.type(text) if callable(action.type) else text
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise UsageError(f"{where}: {key}: {exc}") from None
        if action.choices is not None and made not in action.choices:
            raise UsageError(f"{where}: {key} must be one of {', '.join(map(str, action.choices))}")
        out.append(made)
    return out if isinstance(action, argparse._AppendAction) else out[0]


def section_defaults(
    parser: argparse.ArgumentParser, section: dict[str, Any], where: str
) -> dict[str, tuple[str, Any]]:
    """``{dest: (key, value)}`` for ``section`` applied to the verb ``parser``."""
    out = {}
    for key, value in section.items():
        action = _option(parser, key)
        if action is None:
            raise UsageError(f"{where}: no such option: {key}")
        out[action.dest] = (key, _convert(action, key, value, where))
    return out


def environment_defaults(
    parser: argparse.ArgumentParser, verb: str, environ: Mapping[str, str]
) -> dict[str, tuple[str, Any]]:
    """``{dest: (variable, value)}`` for the ``RDESK_<VERB>_*`` variables of ``environ``.

    Each value goes through the flag's own parser; a variable naming no option of ``verb``
    (or one of every verb's, such as ``--config-dir``) raises :class:`UsageError`.
    """
    prefix = ENV_PREFIXES.get(verb)
    out: dict[str, tuple[str, Any]] = {}
    if prefix is None:
        return out
    for name in sorted(environ):
        if not name.startswith(prefix):
            continue
        key = name[len(prefix):].lower().replace("_", "-")
        action = _option(parser, key)
        if action is None or action.dest in _COMMON:
            raise UsageError(f"environment {name}: rdesk {verb} has no option --{key}")
        text = environ[name].strip()
        if not text:  # an empty variable is an unset one (a template's blank, `-e NAME=`)
            continue
        value: Any = text
        if isinstance(action, argparse._StoreTrueAction):
            if text.lower() not in _TRUE + _FALSE:
                raise UsageError(f"environment {name}: must be true or false, not {text!r}")
            value = text.lower() in _TRUE
        elif isinstance(action, argparse._AppendAction):
            value = [item.strip() for item in text.split(",") if item.strip()]
        out[action.dest] = (name, _convert(action, key, value, f"environment {name}"))
    return out


def _viewer_section(
    verbs: dict[str, argparse.ArgumentParser], section: dict[str, Any], verb: str, where: str
) -> dict[str, Any]:
    """The keys of ``[viewer]`` that ``verb`` has; an error for a key no viewer verb has.

    ``[viewer]`` serves every viewer verb: ``scale`` is ``connect``'s, ``tolerance`` is
    ``do``'s and ``expect``'s; each verb takes what it knows.
    """
    for key in section:
        if not any(_option(verbs[name], key) for name in VIEWER_VERBS if name in verbs):
            raise UsageError(f"{where}: no viewer verb has the option {key}")
    return {key: value for key, value in section.items() if _option(verbs[verb], key)}


def config_path(args: argparse.Namespace) -> tuple[Path, bool]:
    """The config file ``args`` name, and whether it must exist (given with ``--config``).

    Without ``--config``: ``CONFIG_DIR/config.toml`` for a ``--config-dir``, else the
    platform's (``args.config_default``, set by :func:`rdesk.cli.main`).
    """
    if getattr(args, "config", None) is not None:
        return Path(args.config), True
    default = getattr(args, "config_default", None)
    return (Path(default) if default is not None else Path(args.config_dir) / CONFIG_FILE), False


def apply_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None
) -> argparse.Namespace:
    """``args`` with the config file's values under the command line's (which win)."""
    path, required = config_path(args)
    config = load_config(path, required=required)
    verbs = _verb_parsers(parser)
    section = config.host if args.command == "host" else (
        _viewer_section(verbs, config.viewer, args.command, f"{path} [viewer]")
        if args.command in VIEWER_VERBS else {})
    verb = verbs.get(args.command)
    defaults: dict[str, tuple[str, Any]] = {}
    if section and verb is not None:
        where = f"{path} [{args.command if args.command == 'host' else 'viewer'}]"
        defaults.update(section_defaults(verb, section, where))
    if verb is not None:
        defaults.update(environment_defaults(verb, args.command, os.environ))
    if defaults and verb is not None:
        verb.set_defaults(**{d: v for d, (_, v) in defaults.items()})
        config_dir, default = args.config_dir, getattr(args, "config_default", None)
        DeprecatedAlias.quiet = True  # the first parse already warned
        try:
            args = parser.parse_args(argv)
        finally:
            DeprecatedAlias.quiet = False
        if args.config_dir is None:
            args.config_dir, args.config_default = config_dir, default
    if args.command in VIEWER_VERBS and args.url in config.hosts:
        args = _saved_host(verbs[args.command], args, config.hosts[args.url],
                           f"{path} [hosts.{args.url}]")
    args.config_file = config.path
    return args


def _saved_host(
    verb: argparse.ArgumentParser, args: argparse.Namespace, block: dict[str, Any], where: str
) -> argparse.Namespace:
    """Fill ``args`` from a saved host: its URL or ID, and each value no flag gave."""
    args.url = str(block["url"] if "url" in block else block["id"])
    for dest, (_, value) in section_defaults(
        verb, {k: v for k, v in block.items() if k not in ("url", "id")}, where
    ).items():
        if getattr(args, dest, None) == _default(verb, dest):
            setattr(args, dest, value)
    return args


def _default(verb: argparse.ArgumentParser, dest: str) -> Any:
    """The default of ``dest`` (that of its visible option, not of a deprecated alias)."""
    if dest in verb._defaults:
        return verb._defaults[dest]
    for action in verb._actions:
        if action.dest == dest and action.help != argparse.SUPPRESS:
            return action.default
    return None


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``config show``."""
    config = add_verb(
        sub, "config", help="show the settings of the config file and where each comes from",
        examples=["rdesk config show", "rdesk config show --config ~/rdesk.toml"],
    )
    config.add_argument("action", choices=("show",), help="what to do")
    config.set_defaults(handler=_cmd_config)


def _cmd_config(args: argparse.Namespace) -> int:
    from rdesk.cli.parser import build_parser

    path, required = config_path(args)
    config = load_config(path, required=required)
    origin = str(path) if config.path is not None else "(no file)"
    print(f"# config file: {path}{'' if config.path is not None else ' (none)'}")
    verbs = _verb_parsers(build_parser())
    viewer_verbs = [verbs[name] for name in VIEWER_VERBS if name in verbs]
    _viewer_section(verbs, config.viewer, "snapshot", f"{path} [viewer]")  # checks every key
    for title, parsers, section in (("host", [verbs["host"]], config.host),
                                    ("viewer", viewer_verbs, config.viewer)):
        print(f"[{title}]")
        seen: set[str] = set()
        for verb in parsers:
            mine = {k: v for k, v in section.items() if _option(verb, k)}
            given = {d: (k, v, origin) for d, (k, v) in
                     section_defaults(verb, mine, f"{path} [{title}]").items()}
            if title == "host":
                given.update({d: (k, v, f"${k}") for d, (k, v) in
                              environment_defaults(verb, "host", os.environ).items()})
            for action in verb._actions:
                if (not action.option_strings or action.help == argparse.SUPPRESS
                        or action.dest in seen or action.dest in _COMMON):
                    continue
                seen.add(action.dest)
                key = action.option_strings[-1].lstrip("-")
                if action.dest in given:
                    _, value, where = given[action.dest]
                else:
                    value, where = action.default, "default"
                print(f"{key} = {_show(value)}    # {where}")
    for name, block in config.hosts.items():
        print(f"[hosts.{name}]")
        for key, value in block.items():
            print(f"{key} = {_show(value)}    # {origin}")
    return 0


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f'"{value[0]}x{value[1]}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
