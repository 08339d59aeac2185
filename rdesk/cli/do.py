"""Scripting on one connection: ``rdesk do URL ACTION...``, ``rdesk drag`` and ``rdesk expect``.

``rdesk do`` logs in once and runs its actions in order, the vncdotool way::

    rdesk do wss://desk:7900 key ctrl+l type rdesk.example key Return pause 1 snapshot -o s.png

The actions (:func:`parse_actions`, pure) and what each takes:

=========================  ==================================================================
``type TEXT``              type TEXT (newline: Return)
``key COMBO``              press and release a combination (``ctrl+alt+t``, ``Return``)
``keydown COMBO``          press the keys of COMBO and keep them down
``keyup COMBO``            release them (whatever is still down is released at the end)
``move X Y``               move the pointer
``click X Y``              left click (``rclick``, ``mclick``: right, middle; ``dclick``: double)
``drag X1 Y1 X2 Y2``       press the left button at X1 Y1, move to X2 Y2, release
``scroll X Y DY``          turn the wheel DY detents (negative: up)
``pause SECONDS``          wait
``snapshot [-o] FILE``     save the screen as a PNG (pixel-exact)
``expect FILE X Y``        wait until the region at X Y matches FILE (``--tolerance``, ``--wait``)
=========================  ==================================================================

Input is confirmed by the host (a sync round trip) before each ``snapshot`` and ``expect``
and at the end; the run exits 0 only once everything was injected. ``keydown`` lasts for the
connection only: the host releases what a viewer holds when it leaves (docs/input.md), so it
is an action of ``do``, not a verb of its own.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rdesk.cli import exits
from rdesk.cli.common import UsageError, add_common_options, add_verb
from rdesk.cli.values import path, ranged
from rdesk.cli.view import add_viewer_options, with_viewer
from rdesk.client.connection import Connection

__all__ = ["Action", "add_parsers", "parse_actions", "read_options", "run_actions"]

#: Each action's name and how many arguments it takes.
ARITY = {
    "type": 1, "key": 1, "keydown": 1, "keyup": 1, "move": 2, "click": 2, "rclick": 2,
    "mclick": 2, "dclick": 2, "drag": 4, "scroll": 3, "pause": 1, "snapshot": 1, "expect": 3,
}
_CLICKS = {"click": (1, 1), "rclick": (4, 1), "mclick": (2, 1), "dclick": (1, 2)}
#: Pointer steps between a drag's ends: applications that track motion see it move.
DRAG_STEPS = 16
_COORD = ranged(0, 16383)


@dataclass(frozen=True)
class Action:
    """One step of a script: its name and its arguments, already checked.

    ``keysyms``: what ``type`` types or the combination of ``key``/``keydown``/``keyup``;
    ``ints``: coordinates (and a wheel amount); ``seconds``: a pause; ``file``: a PNG.
    """

    name: str
    keysyms: tuple[int, ...] = ()
    ints: tuple[int, ...] = ()
    seconds: float = 0.0
    file: Path | None = None


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: not a number: {text!r}", exits.USAGE) from None
    if not 0 <= value <= 3600:
        raise UsageError(f"{what}: must be 0..3600 seconds, got {text}", exits.USAGE)
    return value


def _ints(name: str, texts: Sequence[str]) -> tuple[int, ...]:
    out = []
    for index, text in enumerate(texts):
        parse = ranged(-10000, 10000) if name == "scroll" and index == 2 else _COORD
        try:
            out.append(parse(text))
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{name}: {exc}", exits.USAGE) from None
    return tuple(out)


def parse_actions(tokens: Sequence[str]) -> list[Action]:
    """The actions ``tokens`` spell, in order; :class:`UsageError` (exit 2) for a bad one.

    Key names and text are checked here too, so a typo fails before connecting.
    """
    from rdesk.protocol.keysyms import parse_combo, text_to_keysyms

    actions: list[Action] = []
    index = 0
    if not tokens:
        raise UsageError("no actions: e.g. rdesk do URL type hello key Return", exits.USAGE)
    while index < len(tokens):
        name = tokens[index]
        if name not in ARITY:
            raise UsageError(
                f"unknown action {name!r}: one of {', '.join(ARITY)}", exits.USAGE
            )
        index += 1
        if name == "snapshot" and index < len(tokens) and tokens[index] in ("-o", "--output"):
            index += 1
        args = list(tokens[index:index + ARITY[name]])
        if len(args) < ARITY[name]:
            raise UsageError(f"{name} needs {ARITY[name]} argument(s)", exits.USAGE)
        index += ARITY[name]
        try:
            if name == "type":
                action = Action(name, keysyms=tuple(text_to_keysyms(args[0])))
            elif name in ("key", "keydown", "keyup"):
                action = Action(name, keysyms=tuple(parse_combo(args[0])))
            elif name == "pause":
                action = Action(name, seconds=_number(args[0], "pause"))
            elif name == "snapshot":
                action = Action(name, file=path(args[0]))
            elif name == "expect":
                action = Action(name, file=path(args[0]), ints=_ints(name, args[1:]))
            else:
                action = Action(name, ints=_ints(name, args))
        except ValueError as exc:  # the keysym parsers': as `rdesk key` and `rdesk type` say it
            raise UsageError(f"{name}: {exc}") from None
        actions.append(action)
    return actions


def check_xy(conn: Connection, x: int, y: int) -> None:
    """One-line :class:`UsageError` if ``x, y`` is off the host's screen."""
    if not (0 <= x < conn.width and 0 <= y < conn.height):
        raise UsageError(f"coordinates {x},{y} are off the {conn.width}x{conn.height} screen")


async def confirm(conn: Connection, timeout: float) -> None:
    """Wait until the host confirms it injected everything sent; exit 7 if it refused."""
    ack = await conn.sync(timeout)
    if not ack.ok:
        raise UsageError(
            f"{conn.address} did not inject the input: {ack.reason or 'refused'}", exits.REFUSED
        )


async def drag(conn: Connection, x1: int, y1: int, x2: int, y2: int, bit: int = 1) -> None:
    """Press ``bit`` at ``x1, y1``, move in :data:`DRAG_STEPS` steps to ``x2, y2``, release."""
    check_xy(conn, x1, y1)
    check_xy(conn, x2, y2)
    await conn.pointer(x1, y1, 0)
    await conn.pointer(x1, y1, bit)
    for step in range(1, DRAG_STEPS + 1):
        x = x1 + (x2 - x1) * step // DRAG_STEPS
        y = y1 + (y2 - y1) * step // DRAG_STEPS
        await conn.pointer(x, y, bit)
    await conn.pointer(x2, y2, 0)


async def expect(conn: Connection, file: Path, x: int, y: int, tolerance: float,
                 wait: float) -> float:
    """Wait until the region at ``x, y`` is within ``tolerance`` RMS of ``file``.

    Returns the RMS difference that matched; :class:`UsageError` with exit status 8
    (:data:`~rdesk.cli.exits.NO_MATCH`) and the closest difference seen after ``wait`` s.
    """
    from rdesk.cli.expect import load_reference, region_rms

    reference = load_reference(file, x, y)
    reference.check_fits(conn.width, conn.height)
    best = [float("inf")]

    def matches() -> bool:
        rms = region_rms(conn.framebuffer.image, reference)
        best[0] = min(best[0], rms)
        return rms <= tolerance

    try:
        await conn.wait_for(matches, wait)
    except TimeoutError:
        raise UsageError(
            f"{file} did not match at {x},{y} within {wait:g} s (closest RMS difference "
            f"{best[0]:.2f}, tolerance {tolerance:g})", exits.NO_MATCH,
        ) from None
    return best[0]


async def run_actions(conn: Connection, actions: Sequence[Action],
                      args: argparse.Namespace) -> None:
    """Run ``actions`` on ``conn`` in order (see the module docstring)."""
    from rdesk.cli.view import save_snapshot

    held: list[int] = []
    for action in actions:
        name, ints = action.name, action.ints
        if name == "type":
            for keysym in action.keysyms:
                await conn.key(keysym, True)
                await conn.key(keysym, False)
        elif name == "key":
            for keysym in action.keysyms:
                await conn.key(keysym, True)
            for keysym in reversed(action.keysyms):
                await conn.key(keysym, False)
        elif name == "keydown":
            for keysym in action.keysyms:
                await conn.key(keysym, True)
                held.append(keysym)
        elif name == "keyup":
            for keysym in reversed(action.keysyms):
                await conn.key(keysym, False)
                if keysym in held:
                    held.remove(keysym)
        elif name == "move":
            check_xy(conn, ints[0], ints[1])
            await conn.pointer(ints[0], ints[1], 0)
        elif name in _CLICKS:
            x, y = ints
            check_xy(conn, x, y)
            bit, times = _CLICKS[name]
            await conn.pointer(x, y, 0)
            for _ in range(times):
                await conn.pointer(x, y, bit)
                await conn.pointer(x, y, 0)
        elif name == "drag":
            await drag(conn, *ints)
        elif name == "scroll":
            await scroll(conn, *ints)
        elif name == "pause":
            await pause(conn, action.seconds)
        else:  # snapshot, expect: what the screen shows once the input is in
            assert action.file is not None
            await confirm(conn, args.timeout)
            if name == "snapshot":
                await save_snapshot(conn, action.file, args.timeout, json_out=False)
            else:
                await expect(conn, action.file, ints[0], ints[1], args.tolerance, args.wait)
    for keysym in reversed(held):  # a keydown without its keyup: let go before leaving
        await conn.key(keysym, False)
    await confirm(conn, args.timeout)


async def pause(conn: Connection, seconds: float) -> None:
    """Wait ``seconds``; raise the :class:`ConnectionLost` at once if the connection ends
    meanwhile (a host that closed it, or dropped it, is not waited out)."""
    closed = asyncio.shield(conn.closed)
    done, _ = await asyncio.wait({closed}, timeout=seconds)
    if closed in done:
        raise closed.result()


async def scroll(conn: Connection, x: int, y: int, dy: int, dx: int = 0) -> None:
    """Move to ``x, y`` and turn the wheel ``dy`` detents down and ``dx`` right."""
    from rdesk.protocol import limits

    check_xy(conn, x, y)
    await conn.pointer(x, y, 0)
    step = limits.MAX_WHEEL_STEPS
    while dx or dy:
        sx = max(-step, min(step, dx))
        sy = max(-step, min(step, dy))
        await conn.wheel(x, y, sx, sy)
        dx, dy = dx - sx, dy - sy


def _add_match_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tolerance", type=float, default=0.0, metavar="RMS",
        help="largest RMS difference (0..255) that still matches",
    )
    parser.add_argument(
        "--wait", type=float, default=30.0, metavar="S", help="give up after S seconds (exit 8)"
    )


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``do``, ``drag`` and ``expect``."""
    do = add_verb(
        sub, "do", help="run several actions on one connection (type, key, keydown, keyup, "
        "move, click, drag, scroll, pause, snapshot, expect)",
        examples=["rdesk do wss://desk:7900 type hello key Return snapshot -o s.png",
                  "rdesk do work keydown shift click 10 10 click 50 50 keyup shift",
                  "rdesk do work key super expect menu.png 0 0 --tolerance 4"],
    )
    add_viewer_options(do)
    _add_match_options(do)
    do.add_argument("actions", nargs=argparse.REMAINDER, metavar="ACTION",
                    action=_ActionsAndOptions,
                    help="actions and their arguments, in order (options may come among them)")
    do.set_defaults(handler=_cmd_do)

    drag_ = add_verb(
        sub, "drag", help="press a button at X1 Y1, move to X2 Y2, release",
        examples=["rdesk drag wss://desk:7900 100 100 300 200"],
    )
    add_viewer_options(drag_)
    for name in ("x1", "y1", "x2", "y2"):
        drag_.add_argument(name, type=_COORD, help="host pixels")
    drag_.add_argument("--button", choices=("left", "middle", "right"), default="left")
    drag_.set_defaults(handler=_cmd_drag)

    expect_ = add_verb(
        sub, "expect",
        help="wait until a region of the screen matches a PNG (exit 0; 8 after --wait)",
        examples=["rdesk expect wss://desk:7900 ok-button.png --at 600,400 --tolerance 3"],
    )
    add_viewer_options(expect_)
    expect_.add_argument("image", type=path, help="the reference PNG")
    expect_.add_argument("--at", type=_point, default=(0, 0), metavar="X,Y",
                         help="where its top-left corner is on the host's screen")
    _add_match_options(expect_)
    expect_.set_defaults(handler=_cmd_expect)


def _point(text: str) -> tuple[int, int]:
    x, sep, y = text.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected X,Y such as 600,400, got {text!r}")
    return _COORD(x), _COORD(y)


def read_options(args: argparse.Namespace) -> list[str]:
    """Set on ``args`` the options among ``args.actions``; return the action tokens left.

    Options may sit among the actions (``... snapshot -o s.png --password-file F``): they are
    read with the same declarations as before the URL, and win over what was parsed (or
    filled in from a saved host) before. Reading twice gives the same tokens.
    """
    options = argparse.ArgumentParser(prog="rdesk do", add_help=False)
    add_viewer_options(options, url=False)
    _add_match_options(options)
    add_common_options(options, top=False)
    _, tokens = options.parse_known_args(args.actions, namespace=args)
    return tokens


class _ActionsAndOptions(argparse.Action):
    """``do``'s ``ACTION...``: the options among them are read as the parse goes, so that
    ``-v`` or ``--config-dir`` after the actions act as they do after any verb."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        namespace.actions = list(values)  # type: ignore[call-overload]
        namespace.actions = read_options(namespace)


def _cmd_do(args: argparse.Namespace) -> int:
    actions = parse_actions(read_options(args))

    async def body(conn: Connection) -> None:
        await run_actions(conn, actions, args)

    with_viewer(args, body)
    return 0


def _cmd_drag(args: argparse.Namespace) -> int:
    bit = {"left": 1, "middle": 2, "right": 4}[args.button]

    async def body(conn: Connection) -> None:
        await drag(conn, args.x1, args.y1, args.x2, args.y2, bit)
        await confirm(conn, args.timeout)

    with_viewer(args, body)
    return 0


def _cmd_expect(args: argparse.Namespace) -> int:
    x, y = args.at

    async def body(conn: Connection) -> float:
        return await expect(conn, args.image, x, y, args.tolerance, args.wait)

    rms = with_viewer(args, body)
    print(f"rdesk: {args.image} matched at {x},{y} (RMS difference {rms:.2f})")
    return 0
