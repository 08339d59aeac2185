"""Reaching hosts by ID from the command line: ``--relay``, ``RDESK_RELAY``, the saved relay,
``rdesk relay`` itself, and ``rdesk relay use``.

Every viewer verb takes an ID in place of the host's URL when a relay is known, looked up in
this order: ``--relay URL``, ``$RDESK_RELAY``, then ``CONFIG_DIR/viewer-relay`` (written by
``rdesk relay use URL [--fingerprint SHA256:...]``: the URL on the first line, the relay's
fingerprint, if pinned, on the second). The ID becomes the address
``wss://RELAY:PORT/id/ID`` (:mod:`rdesk.client.relayed`), which every face connects to.

Exit statuses of the relay's failures, each with its one line: 6 relay unreachable,
7 refused by the relay, 9 unknown or offline ID.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rdesk.cli.common import UsageError, one_line
from rdesk.client.relayed import RelayRefused, RelayUnreachable, UnknownHostID, relayed_url
from rdesk.protocol.hostid import parse_host_id

__all__ = [
    "RELAY_FILE",
    "add_relay_options",
    "save_relay",
    "relay_target",
    "remember_relay_pin",
    "with_relay_exits",
    "wrap_viewer_handlers",
]

#: The saved relay, in the config directory.
RELAY_FILE = "viewer-relay"
#: Exit statuses (``rdesk.cli.exits`` numbering: 6 unreachable, 7 refused).
EXIT_RELAY_UNREACHABLE = 6
EXIT_RELAY_REFUSED = 7
EXIT_UNKNOWN_ID = 9

Handler = Callable[[argparse.Namespace], int]


def add_relay_options(parser: argparse.ArgumentParser) -> None:
    """``--relay`` and ``--relay-fingerprint``, on every viewer verb."""
    parser.add_argument(
        "--relay", metavar="URL",
        help="reach the host by its ID through this relay (wss://HOST[:PORT]; default "
        "$RDESK_RELAY, else the one saved with `rdesk relay use`)",
    )
    parser.add_argument(
        "--relay-fingerprint", metavar="SHA256:...",
        help="pin the relay's key, as `rdesk relay` prints it (default: its known_hosts entry, "
        "trusted on first use)",
    )
    parser.add_argument(
        "--relay-lane", choices=("auto", "raw", "ws"), default="auto",
        help="raw: the host's own TLS through the relay's splice port; ws: the end-to-end "
        "tunnel over the relay's websocket; auto (default): raw when the relay offers it",
    )


def _looks_like_id(text: str) -> bool:
    if any(char in text for char in ":/.[]"):
        return False
    try:
        parse_host_id(text)
    except ValueError:
        return False
    return True


def _saved(config_dir: Path) -> tuple[str | None, str | None]:
    try:
        lines = (config_dir / RELAY_FILE).read_text(encoding="utf-8").splitlines()[:2]
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the saved relay {config_dir / RELAY_FILE}: "
                         f"{one_line(exc)}") from None
    url = lines[0].strip() if lines else ""
    pin = lines[1].strip() if len(lines) > 1 else ""
    return url or None, pin or None


def relay_target(args: argparse.Namespace) -> tuple[str, str | None]:
    """The URL to connect to for ``args.url``, and the relay's pin (``None``: none given).

    A URL stays as it is. An ID becomes ``wss://RELAY:PORT/id/ID`` with the first relay of
    ``--relay``, ``$RDESK_RELAY``, the saved one; without any, a one-line usage error.
    """
    target: str = args.url
    if not _looks_like_id(target):
        return target, None
    relay, pin = getattr(args, "relay", None), getattr(args, "relay_fingerprint", None)
    saved_url, saved_pin = _saved(args.config_dir)
    if relay is None:
        relay = os.environ.get("RDESK_RELAY") or None
    if relay is None:
        relay = saved_url
        pin = pin or saved_pin
    elif relay == saved_url:
        pin = pin or saved_pin
    if relay is None:
        raise UsageError(
            f"{target} is a host ID: give the relay with --relay wss://RELAY[:PORT], set "
            "RDESK_RELAY, or save one with `rdesk relay use URL`"
        )
    return relayed_url(relay, target, getattr(args, "relay_lane", "auto")), pin


def with_relay_exits(handler: Handler) -> Handler:
    """``handler``, with the relay's failures as one line and their own exit status."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (UnknownHostID, RelayRefused, RelayUnreachable) as exc:
            print(f"rdesk: error: {one_line(exc)}", file=sys.stderr)
            if isinstance(exc, UnknownHostID):
                return EXIT_UNKNOWN_ID
            return EXIT_RELAY_REFUSED if isinstance(exc, RelayRefused) else (
                EXIT_RELAY_UNREACHABLE)

    return run


def wrap_viewer_handlers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Give every verb that has ``--relay`` the relay's exit statuses."""
    for parser in sub.choices.values():
        has_relay = any(action.dest == "relay" for action in parser._actions)
        handler = parser.get_default("handler")
        if has_relay and handler is not None:
            parser.set_defaults(handler=with_relay_exits(handler))


def save_relay(args: argparse.Namespace) -> int:
    """``rdesk relay use URL [--fingerprint]``: save the relay viewers use."""
    from rdesk.client.known_hosts import normalize_fingerprint
    from rdesk.common.files import atomic_write

    relayed_url(args.url, "0000-0000-00000")  # a bad address is a one-line error here
    pin = normalize_fingerprint(args.fingerprint) if args.fingerprint else None
    config_dir: Path = args.config_dir
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = args.url.strip() + "\n" + (pin + "\n" if pin else "")
    try:
        atomic_write(config_dir / RELAY_FILE, text.encode("utf-8"), 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {config_dir / RELAY_FILE}: {one_line(exc)}") from None
    print(f"rdesk: viewers now reach hosts by ID through {args.url.strip()}"
          + (f" (pinned {pin})" if pin else ""))
    return 0


# --- the host's side ---------------------------------------------------------------------------


def add_host_relay_options(host: argparse.ArgumentParser) -> None:
    """``rdesk host``'s ``--relay``, ``--relay-token-file``, ``--relay-fingerprint``,
    ``--no-listen``."""
    group = host.add_argument_group("reachable by ID through a relay")
    group.add_argument(
        "--relay", metavar="URL",
        help="also register on this relay (wss://HOST[:PORT]) and print the host's ID",
    )
    group.add_argument(
        "--relay-token-file", type=Path, metavar="FILE",
        help="the relay's enrolment token (`rdesk relay token create`), first line of FILE",
    )
    group.add_argument(
        "--relay-fingerprint", metavar="SHA256:...",
        help="pin the relay's key, as `rdesk relay` prints it (default: trust the first one "
        "seen, and print it)",
    )
    group.add_argument(
        "--no-listen", action="store_true",
        help="serve viewers through the relay only: open no port (needs --relay)",
    )


def host_relay_settings(args: argparse.Namespace) -> dict[str, object]:
    """The :class:`~rdesk.host.settings.HostSettings` fields of those options, checked."""
    from rdesk.client.known_hosts import normalize_fingerprint

    url = args.relay
    if url is not None:
        relayed_url(url, "0000-0000-00000")  # a bad address is a one-line error here
        if "://" not in url:
            url = "wss://" + url
        if url.count(":") < 2:  # no port: the relay's default one
            url = url.rstrip("/") + ":8443"
    elif args.relay_token_file is not None or args.relay_fingerprint is not None:
        raise UsageError("--relay-token-file and --relay-fingerprint need --relay")
    if args.no_listen and url is None:
        raise UsageError("--no-listen needs --relay: otherwise no viewer could reach the host")
    pin = args.relay_fingerprint
    return {
        "relay_url": url.rstrip("/") if url is not None else None,
        "relay_token_file": args.relay_token_file,
        "relay_fingerprint": normalize_fingerprint(pin) if pin is not None else None,
        "listen": not args.no_listen,
    }


def remember_relay_pin(args: argparse.Namespace, target: str, pin: str | None) -> None:
    """For the window, which checks a relay by its ``known_hosts`` entry: an explicit relay
    pin (``--relay-fingerprint`` or the saved one) becomes that entry first. A different
    entry already there raises :class:`~rdesk.client.known_hosts.HostKeyMismatch` (one line:
    the relay's key changed, or the pin is wrong), before any window opens."""
    if pin is None:
        return
    from rdesk.client.address import parse_url
    from rdesk.client.known_hosts import HostKeyMismatch, KnownHosts

    relay = parse_url(target)
    known = KnownHosts(args.config_dir / "known_hosts")
    try:
        known.add(relay.host, relay.port, pin)
    except HostKeyMismatch as exc:
        exc.args = (f"the relay pin {exc.actual} is not the key remembered for {relay} "
                    f"({exc.expected}); if the relay's key really changed, remove its line "
                    f"from {known.path}",)
        raise
