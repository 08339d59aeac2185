"""``rdesk certs`` (the CA of viewer certificates) and ``rdesk play`` (session recordings).

Neither needs the ``host`` extra: the CA needs cryptography, a base dependency; ``rdesk play``
is a viewer (Pillow, and Tk for its window).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rdesk.cli.common import HelpFormatter, add_common_options, add_deprecated, add_verb
from rdesk.cli.values import path

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``certs`` (with its verbs ``init``, ``issue``, ``revoke``, ``list``) and ``play``."""
    certs = add_verb(
        sub, "certs", help="manage the CA of viewer (client) certificates",
        examples=["rdesk certs init", "rdesk certs issue alice --role control --out ~/certs",
                  "rdesk certs list --ca-dir ~/rdesk-ca"],
    )
    certs.set_defaults(handler=_cmd_certs)
    verbs = certs.add_subparsers(dest="certs_command", metavar="VERB", required=True)
    def verb(name: str, help: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)

    init = verb("init", "create the CA (EC P-256, 10 years)")
    issue = verb("issue", "issue a viewer certificate")
    issue.add_argument("name", help="the viewer's name (letters, digits, . _ -)")
    issue.add_argument("--role", choices=("control", "view"), required=True)
    issue.add_argument(
        "--out", type=path, default=Path("."), help="write NAME.crt and NAME.key here"
    )
    issue.add_argument("--days", type=int, default=825, help="validity in days")
    revoke = verb("revoke", "revoke a viewer certificate")
    revoke.add_argument("name")
    listing = verb("list", "list issued certificates")
    for each in (init, issue, revoke, listing):
        # --ca-dir, as on `rdesk host`; --dir is its old spelling.
        each.add_argument(
            "--ca-dir", type=path, default=None, help="the CA directory (default: CONFIG_DIR/ca)"
        )
        add_deprecated(each, "--dir", "--ca-dir", "ca_dir", type=path)
        add_common_options(each, top=False)

    play = add_verb(
        sub, "play", help="replay a session recording (rdesk host --record)",
        examples=["rdesk play rec/session.rdrec --speed 4",
                  "rdesk play rec/session.rdrec --export-png frames --every 1"],
    )
    play.add_argument("file", type=path, help="the .rdrec file")
    play.add_argument("--speed", type=float, default=1.0, help="times real time")
    play.add_argument(
        "--export-png", type=path, default=None, metavar="DIR",
        help="write frames as PNG into DIR instead of showing a window",
    )
    play.add_argument(
        "--every", type=float, default=None, metavar="S",
        help="with --export-png: one PNG per S seconds of recording (default: every update)",
    )
    play.set_defaults(handler=_cmd_play)


def _ca_dir(args: argparse.Namespace) -> Path:
    from rdesk.host.security.ca import default_ca_dir

    return Path(args.ca_dir) if args.ca_dir is not None else default_ca_dir(args.config_dir)


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
    from rdesk.recording.format import RecordingError

    if args.speed <= 0:
        raise RecordingError("--speed must be positive")
    if args.every is not None and args.every <= 0:
        raise RecordingError("--every must be positive")
    from rdesk.client.player import clipboard_lines, transfer_lines

    for line in transfer_lines(args.file):  # what files moved in the session, first
        print(f"rdesk: transfer at {line}")
    for line in clipboard_lines(args.file):  # only with --record-clipboard
        print(f"rdesk: clipboard at {line}")
    if args.export_png is not None:
        from rdesk.client.player import export_png

        written = export_png(args.file, args.export_png, every=args.every)
        print(f"rdesk: wrote {len(written)} PNG frames to {args.export_png}")
        return 0
    from rdesk.client.tk.player import play_window

    play_window(args.file, speed=args.speed)
    return 0
