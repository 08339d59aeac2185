"""The input verbs: ``rdesk type``, ``key``, ``move``, ``click`` and ``scroll``.

Each connects as a viewer, sends its events and exits 0 only once the host confirms it
injected them (a sync round trip); otherwise one line and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from rdesk.cli.common import UsageError, add_verb
from rdesk.cli.values import ranged
from rdesk.cli.view import add_viewer_options, with_viewer
from rdesk.client.connection import Connection

__all__ = ["add_parsers"]

_BUTTON_BITS = {"left": 1, "middle": 2, "right": 4}
#: Client-side pacing of long `rdesk type` runs, under the host's per-viewer input limit
#: (rdesk.host.input.inject: 1000 events/s, bursts of 2000).
_PACE_BURST = 1500
_PACE_RATE = 800.0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``type``, ``key``, ``move``, ``click`` and ``scroll``."""
    type_ = add_verb(sub, "type", help="type text on the host (newlines as Return)")
    add_viewer_options(type_)
    type_.add_argument("text", help="the text to type, exactly as given")
    type_.set_defaults(handler=_cmd_type)

    key = add_verb(sub, "key", help="press key combinations such as ctrl+alt+t, Return")
    add_viewer_options(key)
    key.add_argument("combos", nargs="+", metavar="COMBO", help="keys joined by +, in order")
    key.set_defaults(handler=_cmd_key)

    def xy(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("x", type=ranged(0, 16383), help="host pixel column")
        parser.add_argument("y", type=ranged(0, 16383), help="host pixel row")

    move = add_verb(sub, "move", help="move the host's pointer to X Y")
    add_viewer_options(move)
    xy(move)
    move.set_defaults(handler=_cmd_move)

    click = add_verb(sub, "click", help="click at X Y")
    add_viewer_options(click)
    xy(click)
    click.add_argument("--button", choices=tuple(_BUTTON_BITS), default="left")
    click.add_argument("--double", action="store_true", help="click twice")
    click.set_defaults(handler=_cmd_click)

    scroll = add_verb(sub, "scroll", help="turn the wheel at X Y (positive --dy scrolls down)")
    add_viewer_options(scroll)
    xy(scroll)
    scroll.add_argument("--dy", type=ranged(-10000, 10000), default=0, help="detents down")
    scroll.add_argument("--dx", type=ranged(-10000, 10000), default=0, help="detents right")
    scroll.set_defaults(handler=_cmd_scroll)


async def _confirm(conn: Connection, timeout: float) -> None:
    """Wait until the host confirms it injected everything sent; one-line error if not."""
    ack = await conn.sync(timeout)
    if not ack.ok:
        raise UsageError(f"{conn.address} did not inject the input: {ack.reason or 'refused'}")


def _check_xy(conn: Connection, x: int, y: int) -> None:
    if not (0 <= x < conn.width and 0 <= y < conn.height):
        raise UsageError(
            f"coordinates {x},{y} are off the {conn.width}x{conn.height} screen"
        )


def _input_verb(args: argparse.Namespace, body: Callable[[Connection], Awaitable[None]]) -> int:
    async def run(conn: Connection) -> None:
        await body(conn)
        await _confirm(conn, args.timeout)

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


def _cmd_key(args: argparse.Namespace) -> int:
    from rdesk.protocol.keysyms import parse_combo

    try:
        combos = [parse_combo(combo) for combo in args.combos]
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def body(conn: Connection) -> None:
        for keysyms in combos:
            for keysym in keysyms:
                await conn.key(keysym, True)
            for keysym in reversed(keysyms):
                await conn.key(keysym, False)

    return _input_verb(args, body)


def _cmd_move(args: argparse.Namespace) -> int:
    async def body(conn: Connection) -> None:
        _check_xy(conn, args.x, args.y)
        await conn.pointer(args.x, args.y, 0)

    return _input_verb(args, body)


def _cmd_click(args: argparse.Namespace) -> int:
    bit = _BUTTON_BITS[args.button]

    async def body(conn: Connection) -> None:
        _check_xy(conn, args.x, args.y)
        await conn.pointer(args.x, args.y, 0)
        for _ in range(2 if args.double else 1):
            await conn.pointer(args.x, args.y, bit)
            await conn.pointer(args.x, args.y, 0)

    return _input_verb(args, body)


def _cmd_scroll(args: argparse.Namespace) -> int:
    from rdesk.protocol import limits

    if not args.dx and not args.dy:
        raise UsageError("nothing to scroll: give --dy N and/or --dx N")

    async def body(conn: Connection) -> None:
        _check_xy(conn, args.x, args.y)
        await conn.pointer(args.x, args.y, 0)
        dx, dy = args.dx, args.dy
        step = limits.MAX_WHEEL_STEPS
        while dx or dy:
            sx = max(-step, min(step, dx))
            sy = max(-step, min(step, dy))
            await conn.wheel(args.x, args.y, sx, sy)
            dx, dy = dx - sx, dy - sy

    return _input_verb(args, body)
