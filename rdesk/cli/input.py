"""The input verbs: ``rdesk type``, ``key``, ``move``, ``click`` and ``scroll``.

Each connects as a viewer, sends its events and exits 0 only once the host confirms it
injected them (a sync round trip); otherwise one line and a non-zero exit status
(:mod:`rdesk.cli.exits`: 7 when the host refused the input, e.g. a view-only login).
``drag``, ``expect`` and several actions on one connection (``do``) are in :mod:`rdesk.cli.do`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from rdesk.cli.common import UsageError, add_verb
from rdesk.cli.do import check_xy, confirm, scroll
from rdesk.cli.values import ranged
from rdesk.cli.view import add_viewer_options, with_viewer
from rdesk.client.connection import Connection

__all__ = ["add_parsers", "parse_combos"]

_BUTTON_BITS = {"left": 1, "middle": 2, "right": 4}
#: Client-side pacing of long `rdesk type` runs, under the host's per-viewer input limit
#: (rdesk.host.input.inject: 1000 events/s, bursts of 2000).
_PACE_BURST = 1500
_PACE_RATE = 800.0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``type``, ``key``, ``move``, ``click`` and ``scroll``."""
    type_ = add_verb(
        sub, "type", help="type text on the host (newlines as Return)",
        examples=["rdesk type wss://desk:7900 'Hello, World!'",
                  "rdesk type wss://desk:7900 \"$(printf 'one\\ntwo')\"   # newline = Return"],
    )
    add_viewer_options(type_)
    type_.add_argument("text", help="the text to type, exactly as given")
    type_.set_defaults(handler=_cmd_type)

    key = add_verb(
        sub, "key", help="press key combinations such as ctrl+alt+t, Return",
        examples=["rdesk key wss://desk:7900 ctrl+alt+t", "rdesk key wss://desk:7900 ctrl+l Return",
                  "rdesk do wss://desk:7900 key ctrl+l type rdesk.example key Return"],
    )
    add_viewer_options(key)
    key.add_argument("combos", nargs="+", metavar="COMBO", help="keys joined by +, in order")
    key.set_defaults(handler=_cmd_key)

    def xy(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("x", type=ranged(0, 16383), help="host pixel column")
        parser.add_argument("y", type=ranged(0, 16383), help="host pixel row")

    move = add_verb(sub, "move", help="move the host's pointer to X Y",
                    examples=["rdesk move wss://desk:7900 640 360"])
    add_viewer_options(move)
    xy(move)
    move.set_defaults(handler=_cmd_move)

    click = add_verb(sub, "click", help="click at X Y",
                     examples=["rdesk click wss://desk:7900 100 200 --button right --double"])
    add_viewer_options(click)
    xy(click)
    click.add_argument("--button", choices=tuple(_BUTTON_BITS), default="left")
    click.add_argument("--double", action="store_true", help="click twice")
    click.set_defaults(handler=_cmd_click)

    scroll_ = add_verb(
        sub, "scroll", help="turn the wheel at X Y (positive --dy scrolls down)",
        examples=["rdesk scroll wss://desk:7900 500 400 --dy 3"],
    )
    add_viewer_options(scroll_)
    xy(scroll_)
    scroll_.add_argument("--dy", type=ranged(-10000, 10000), default=0, help="detents down")
    scroll_.add_argument("--dx", type=ranged(-10000, 10000), default=0, help="detents right")
    scroll_.set_defaults(handler=_cmd_scroll)


def _input_verb(args: argparse.Namespace, body: Callable[[Connection], Awaitable[None]]) -> int:
    async def run(conn: Connection) -> None:
        await body(conn)
        await confirm(conn, args.timeout)

    with_viewer(args, run)
    return 0


def _cmd_type(args: argparse.Namespace) -> int:
    from rdesk.protocol.keysyms import text_to_keysyms

    try:
        keysyms = text_to_keysyms(args.text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def body(conn: Connection) -> None:
        import time

        start = time.monotonic()
        for index, keysym in enumerate(keysyms):
            # Stay under the host's rate limit: it drops presses above it.
            events = 2 * index
            if events > _PACE_BURST:
                delay = start + (events - _PACE_BURST) / _PACE_RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await conn.key(keysym, True)
            await conn.key(keysym, False)

    return _input_verb(args, body)


def parse_combos(combos: list[str]) -> list[list[int]]:
    """The keysyms of each combination; one-line :class:`UsageError` for an unknown key.

    A word that is no key name (``rdesk.example``) is most likely text meant to be typed:
    the error says to use ``rdesk type`` or ``rdesk do ... type``.
    """
    from rdesk.protocol.keysyms import parse_combo

    parsed = []
    for combo in combos:
        try:
            parsed.append(parse_combo(combo))
        except ValueError as exc:
            hint = ""
            if "+" not in combo.strip("+") and len(combo) > 1:
                hint = (f"; to type the text {combo!r}, use `rdesk type URL TEXT` or "
                        f"`rdesk do URL key ... type TEXT key ...`")
            raise UsageError(f"{exc}{hint}") from None
    return parsed


def _cmd_key(args: argparse.Namespace) -> int:
    combos = parse_combos(args.combos)

    async def body(conn: Connection) -> None:
        for keysyms in combos:
            for keysym in keysyms:
                await conn.key(keysym, True)
            for keysym in reversed(keysyms):
                await conn.key(keysym, False)

    return _input_verb(args, body)


def _cmd_move(args: argparse.Namespace) -> int:
    async def body(conn: Connection) -> None:
        check_xy(conn, args.x, args.y)
        await conn.pointer(args.x, args.y, 0)

    return _input_verb(args, body)


def _cmd_click(args: argparse.Namespace) -> int:
    bit = _BUTTON_BITS[args.button]

    async def body(conn: Connection) -> None:
        check_xy(conn, args.x, args.y)
        await conn.pointer(args.x, args.y, 0)
        for _ in range(2 if args.double else 1):
            await conn.pointer(args.x, args.y, bit)
            await conn.pointer(args.x, args.y, 0)

    return _input_verb(args, body)


def _cmd_scroll(args: argparse.Namespace) -> int:
    if not args.dx and not args.dy:
        raise UsageError("nothing to scroll: give --dy N and/or --dx N")

    async def body(conn: Connection) -> None:
        await scroll(conn, args.x, args.y, args.dy, args.dx)

    return _input_verb(args, body)

