"""``rdesk resize URL WxH``: make the host's virtual desktop that size.

Exits 0 once the host has resized (and printed the size it now has), 7 with the host's
one-line reason when it refuses (a real display, Xvfb, a view-only login, not in control, a
size its X server does not take).
"""

from __future__ import annotations

import argparse
import sys

from rdesk.cli import exits
from rdesk.cli.common import add_verb
from rdesk.cli.values import sized
from rdesk.cli.view import add_viewer_options, with_viewer
from rdesk.client.connection import Connection
from rdesk.protocol.resize import MAX_SIDE, MIN_SIDE, ResizeResult

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``resize``."""
    verb = add_verb(
        sub, "resize", help="resize the host's virtual desktop (rdesk host --virtual)",
        examples=["rdesk resize wss://desk:7900 1920x1080"],
    )  # fmt: skip
    add_viewer_options(verb)
    verb.add_argument(
        "size", type=sized(MIN_SIDE, MAX_SIDE), metavar="WxH",
        help=f"the new size, each side {MIN_SIDE} to {MAX_SIDE} pixels",
    )  # fmt: skip
    verb.set_defaults(handler=_cmd_resize)


def _cmd_resize(args: argparse.Namespace) -> int:
    got: list[ResizeResult] = []
    width, height = args.size

    async def run(conn: Connection) -> None:
        got.append(await conn.request_resize(width, height, args.timeout))

    with_viewer(args, run)
    result = got[0]
    if not result.ok:
        print(f"rdesk: resize refused: {result.reason}", file=sys.stderr)
        return exits.REFUSED
    print(f"{result.width}x{result.height}")
    return exits.OK
