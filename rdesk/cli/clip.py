"""``rdesk clip get URL`` and ``rdesk clip set URL TEXT|-``: the host's clipboard text.

``get`` prints the host's text exactly (no newline added); ``set`` puts TEXT (or standard
input, for ``-``) into it and exits 0 once the host took it. A refusal (the host's
``--clipboard`` policy, a view-only login, the size cap, a NUL) is one line and exit status 7.
"""

from __future__ import annotations

import argparse
import sys

from rdesk.cli import exits
from rdesk.cli.common import UsageError, add_verb
from rdesk.cli.values import ranged
from rdesk.cli.view import add_viewer_options, with_viewer
from rdesk.client.clipboard import DEFAULT_CAP, ClipboardRefused, get_text, set_text
from rdesk.client.connection import Connection

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``clip get`` and ``clip set``."""
    clip = add_verb(
        sub, "clip", help="read or set the host's clipboard text",
        examples=["rdesk clip get wss://desk:7900 > copied.txt",
                  "rdesk clip set wss://desk:7900 'some text'",
                  "printf 'from a file' | rdesk clip set wss://desk:7900 -"],
    )  # fmt: skip
    actions = clip.add_subparsers(dest="clip_action", metavar="get|set", required=True)
    get = actions.add_parser("get", help="print the host's clipboard text")
    add_viewer_options(get)
    _common(get)
    get.set_defaults(handler=_cmd_get)
    put = actions.add_parser("set", help="put TEXT (or stdin with -) into the host's clipboard")
    add_viewer_options(put)
    _common(put)
    put.add_argument("text", metavar="TEXT|-", help="the text, or - to read standard input")
    put.set_defaults(handler=_cmd_set)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--primary", action="store_true", help="the PRIMARY selection (mouse selection)"
    )
    parser.add_argument(
        "--max", type=ranged(1, 64 << 20), default=DEFAULT_CAP, metavar="BYTES",
        help=f"largest text taken or sent ({DEFAULT_CAP})",
    )  # fmt: skip


def _selection(args: argparse.Namespace) -> str:
    return "primary" if args.primary else "clipboard"


def _cmd_get(args: argparse.Namespace) -> int:
    got: list[str] = []

    async def run(conn: Connection) -> None:
        got.append(await get_text(conn, _selection(args), args.timeout, cap=args.max))

    try:
        with_viewer(args, run)
    except ClipboardRefused as exc:
        print(f"rdesk: clipboard refused: {exc}", file=sys.stderr)
        return exits.REFUSED
    sys.stdout.write(got[0])
    sys.stdout.flush()
    return exits.OK


def _cmd_set(args: argparse.Namespace) -> int:
    if args.text == "-":
        raw = sys.stdin.buffer.read(args.max + 1)  # one byte more tells "too big" apart
        if len(raw) > args.max:
            raise UsageError(f"standard input holds more than {args.max} bytes (--max)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("standard input is not UTF-8 text") from None
    else:
        text = args.text

    async def run(conn: Connection) -> None:
        await set_text(conn, text, _selection(args), args.timeout, cap=args.max)

    try:
        with_viewer(args, run)
    except ClipboardRefused as exc:
        print(f"rdesk: clipboard refused: {exc}", file=sys.stderr)
        return exits.REFUSED
    return exits.OK
