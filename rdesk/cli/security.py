"""The security verbs and flags of the CLI (``rdesk certs``, ``rdesk play``, host and viewer
flags), kept apart from :mod:`rdesk.cli` so that file only wires them in."""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "COMMANDS",
    "add_host_options",
    "add_parsers",
    "add_viewer_options",
    "host_settings_fields",
    "viewer_ssl_context",
]


def add_viewer_options(parser: argparse.ArgumentParser) -> None:
    """``--cert``/``--key``: present a client certificate (``rdesk certs issue``)."""
    parser.add_argument(
        "--cert", type=Path, help="client certificate (PEM) for hosts that need one"
    )
    parser.add_argument("--key", type=Path, help="private key (PEM) of --cert")


def viewer_ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context the viewer options ask for (``None``: the default one)."""
    cert, key = getattr(args, "cert", None), getattr(args, "key", None)
    if cert is None and key is None:
        return None
    from rdesk.client.tls import client_ssl_context

    return client_ssl_context(cert=cert, key=key)


def add_host_options(host: argparse.ArgumentParser) -> None:
    host.add_argument(
        "--require-client-cert",
        action="store_true",
        help="admit only viewers with a certificate of the CA (rdesk certs); role from it",
    )
    host.add_argument(
        "--ca-dir", type=Path, default=None, help="the viewer CA (default CONFIG_DIR/ca)"
    )
    host.add_argument(
        "--audit-log", type=Path, default=None, metavar="FILE",
        help="append security events to FILE as JSON lines (mode 0600)",
    )
    host.add_argument(
        "--record", type=Path, default=None, metavar="DIR",
        help="record each viewer session's screen stream into DIR (rdesk play replays it)",
    )
    host.add_argument(
        "--record-input", action="store_true",
        help="also record viewers' pointer and key input (off by default: keystrokes)",
    )


def host_settings_fields(args: argparse.Namespace) -> dict[str, object]:
    """The :class:`~rdesk.host.settings.HostSettings` fields these host options set."""
    return {
        "require_client_cert": args.require_client_cert,
        "ca_dir": args.ca_dir,
        "audit_log": args.audit_log,
        "record_dir": args.record,
        "record_input": args.record_input,
    }


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = sub.add_parser("certs", help="manage the CA of viewer (client) certificates")
    verbs = certs.add_subparsers(dest="certs_command", metavar="VERB", required=True)
    init = verbs.add_parser("init", help="create the CA (EC P-256, 10 years)")
    issue = verbs.add_parser("issue", help="issue a viewer certificate")
    issue.add_argument("name", help="the viewer's name (letters, digits, . _ -)")
    issue.add_argument("--role", choices=("control", "view"), required=True)
    issue.add_argument(
        "--out", type=Path, default=Path("."), help="write NAME.crt and NAME.key here (.)"
    )
    issue.add_argument("--days", type=int, default=825, help="validity in days (825)")
    revoke = verbs.add_parser("revoke", help="revoke a viewer certificate")
    revoke.add_argument("name")
    listing = verbs.add_parser("list", help="list issued certificates")
    for verb in (init, issue, revoke, listing):
        verb.add_argument(
            "--dir", type=Path, default=None, help="the CA directory (default CONFIG_DIR/ca)"
        )

    play = sub.add_parser("play", help="replay a session recording (rdesk host --record)")
    play.add_argument("file", type=Path, help="the .rdrec file")
    play.add_argument("--speed", type=float, default=1.0, help="times real time (1)")
    play.add_argument(
        "--export-png", type=Path, default=None, metavar="DIR",
        help="write frames as PNG into DIR instead of showing a window",
    )
    play.add_argument(
        "--every", type=float, default=None, metavar="S",
        help="with --export-png: one PNG per S seconds of recording (default: every update)",
    )


def _ca_dir(args: argparse.Namespace) -> Path:
    from rdesk.host.security.ca import default_ca_dir

    return Path(args.dir) if args.dir is not None else default_ca_dir(args.config_dir)


def _cmd_certs(args: argparse.Namespace) -> int:
    from rdesk.host.security import ca

    directory = _ca_dir(args)
    if args.certs_command == "init":
        path = ca.init_ca(directory)
        print(f"rdesk: CA created: {path} (key {directory / ca.CA_KEY}, mode 0600)")
    elif args.certs_command == "issue":
        if args.days < 1:
            raise ca.CAError("--days must be at least 1")
        cert, key = ca.issue(directory, args.name, args.role, args.out, days=args.days)
        print(f"rdesk: issued {args.role} certificate {cert} with key {key} (mode 0600)")
    elif args.certs_command == "revoke":
        serial = ca.revoke(directory, args.name)
        print(f"rdesk: revoked {args.name} (serial {serial:x})")
    else:
        for item in ca.list_issued(directory):
            print(
                f"{item.name:24} {item.role or '-':8} {item.serial:040x} "
                f"{item.not_after.date().isoformat()} {item.status}"
            )
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    from rdesk.client import player
    from rdesk.recording.format import RecordingError

    if args.speed <= 0:
        raise RecordingError("--speed must be positive")
    if args.every is not None and args.every <= 0:
        raise RecordingError("--every must be positive")
    if args.export_png is not None:
        written = player.export_png(args.file, args.export_png, every=args.every)
        print(f"rdesk: wrote {len(written)} PNG frames to {args.export_png}")
        return 0
    player.play_window(args.file, speed=args.speed)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "certs": _cmd_certs,
    "play": _cmd_play,
}


def errors() -> tuple[type[BaseException], ...]:
    """Exceptions of these verbs whose ``str()`` is a one-line user error."""
    from rdesk.host.security.ca import CAError
    from rdesk.recording.format import RecordingError

    return (CAError, RecordingError)
