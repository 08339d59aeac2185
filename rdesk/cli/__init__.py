"""The ``rdesk`` command: the host, the viewers and the scripting verbs.

Every failure a user can cause ends as one line ``rdesk: error: ...`` and exit status 1 (2 for
a bad command line, as argparse does); tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from rdesk import __version__
from rdesk.cli import security as cli_security
from rdesk.client.connection import (
    DEFAULT_PORT,
    ConnectError,
    Connection,
    connect,
    parse_url,
)
from rdesk.client.known_hosts import HostKeyError, KnownHosts, UnknownHostKey
from rdesk.client.tls import ClientTLSError
from rdesk.host.settings import HostSettings, default_config_dir

__all__ = ["main", "build_parser"]

T = TypeVar("T")

#: Exceptions whose message is meant for the user as it is.
_USER_ERRORS: tuple[type[BaseException], ...] = (
    ConnectError,
    HostKeyError,
    ClientTLSError,
    TimeoutError,
)


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line."""


# --- argument helpers --------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{2,5})x(\d{2,5})", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}")
    width, height = int(match[1]), int(match[2])
    if not (32 <= width <= 16384 and 32 <= height <= 16384):
        raise argparse.ArgumentTypeError("each side must be between 32 and 16384 pixels")
    return width, height


def _invite(text: str) -> tuple[str, float]:
    role, _, minutes = text.partition(":")
    if role not in ("control", "view"):
        raise argparse.ArgumentTypeError(f"invite role must be control or view, got {role!r}")
    try:
        value = float(minutes) if minutes else 30.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"invite minutes must be a number: {minutes!r}") from None
    if not 0 < value <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError("invite minutes must be between 0 and 10080 (7 days)")
    return role, value


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


def _origin(text: str) -> str:
    """An origin as browsers send it: ``https://NAME[:PORT]``, no path."""
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"not an origin (https://NAME[:PORT]): {text!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _bandwidth(text: str) -> int:
    """Bits per second: ``512k``, ``10M``, ``1.5G`` or a plain number."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)(?:bit/s|bps|b)?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected bits/s such as 512k or 10M, got {text!r}")
    factor = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match[2].lower()]
    value = int(float(match[1]) * factor)
    if not 8_000 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError("bandwidth must be between 8k and 4G bits/s")
    return value


def _ranged(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo}..{hi}, got {value}")
        return value

    return parse


def _viewer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the host, e.g. wss://HOST:PORT (or HOST:PORT)")
    parser.add_argument(
        "--password-file", type=Path, help="read the password from this file (first line)"
    )
    parser.add_argument(
        "--fingerprint", help="pin the host key: SHA256:... as `rdesk host` prints it"
    )
    parser.add_argument(
        "--accept-new",
        action="store_true",
        help="trust a host key seen for the first time without asking (for scripts)",
    )
    parser.add_argument("--name", default=f"{getpass.getuser()}@rdesk", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")
    cli_security.add_viewer_options(parser)


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar (also used by the docs)."""
    parser = argparse.ArgumentParser(
        prog="rdesk", description="Secure remote desktop over TLS websockets."
    )
    parser.add_argument("--version", action="version", version=f"rdesk {__version__}")
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="certificates, password and known hosts (default ~/.config/rdesk)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    host = sub.add_parser("host", help="share this machine's screen")
    where = host.add_mutually_exclusive_group()
    where.add_argument("--display", help="X display to share (default: $DISPLAY)")
    where.add_argument(
        "--virtual", type=_size, metavar="WxH", help="start a private virtual display (Xvfb)"
    )
    host.add_argument("--bind", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    host.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    host.add_argument("--cert", type=Path, help="TLS certificate (PEM) instead of the self-signed")
    host.add_argument("--key", type=Path, help="private key (PEM) of --cert")
    host.add_argument(
        "--tls12", action="store_true", help="also accept TLS 1.2 (ECDHE+AEAD suites only)"
    )
    host.add_argument(
        "--password-file", type=Path, help="control password in this file (first line)"
    )
    host.add_argument(
        "--quality", type=_ranged(1, 100), default=80,
        help="highest JPEG quality; lowered automatically on slow links (80)",
    )
    host.add_argument("--max-fps", type=_ranged(1, 240), default=60, help="capture rate cap (60)")
    host.add_argument(
        "--max-bandwidth", type=_bandwidth, default=None, metavar="BITS",
        help="most bits/s sent to each viewer, e.g. 10M or 512k (default: the link decides)",
    )
    host.add_argument("--max-viewers", type=_ranged(1, 256), default=16, help="(16)")
    host.add_argument("--name", default="", help="host name shown to viewers")
    host.add_argument(
        "--view-password-file", type=Path, help="view-only password in this file (first line)"
    )
    host.add_argument(
        "--shared-control", action="store_true", help="let every control viewer send input at once"
    )
    host.add_argument(
        "--consent",
        choices=("auto", "ask"),
        default="auto",
        help="ask: the local user accepts each viewer on this terminal; auto: admit any valid "
        "credential (unattended access; the default)",
    )
    host.add_argument(
        "--consent-timeout", type=_ranged(1, 3600), default=30, help="seconds to accept (30)"
    )
    host.add_argument(
        "--invite",
        action="append",
        default=[],
        type=_invite,
        metavar="ROLE[:MINUTES]",
        help="print a one-time invite code for ROLE (control|view), valid MINUTES (30)",
    )
    host.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        type=_origin,
        metavar="URL",
        help="also let browser pages from this origin (https://NAME[:PORT]) connect; repeatable",
    )

    cli_security.add_host_options(host)

    passwd = sub.add_parser("passwd", help="set the host's password (stored as an scrypt hash)")
    passwd.add_argument(
        "--password-file", type=Path, help="read the new password from this file"
    )
    passwd.add_argument(
        "--view", action="store_true", help="set the view-only password instead"
    )

    snap = sub.add_parser("snapshot", help="save the host's screen as a PNG, pixel-exact")
    _viewer_options(snap)
    snap.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write")

    watch = sub.add_parser(
        "watch", help="follow the screen headless and print link figures once a second"
    )
    _viewer_options(watch)
    watch.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    watch.add_argument("--json", action="store_true", help="print JSON lines")
    _input_parsers(sub)
    cli_security.add_parsers(sub)

    connect_ = sub.add_parser("connect", help="open the desktop viewer window")
    _viewer_options(connect_)
    connect_.add_argument("--view-only", action="store_true", help="send no input")
    connect_.add_argument("--fullscreen", action="store_true", help="start full screen")
    connect_.add_argument(
        "--scale", choices=("fit", "1"), default="fit", help="fit to window (default) or 1:1"
    )
    return parser


# --- running -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rdesk`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="rdesk: %(levelname)s: %(message)s",
    )
    if args.config_dir is None:
        args.config_dir = default_config_dir()
    try:
        handler = _COMMANDS[args.command]
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except _USER_ERRORS + _host_errors() + (UsageError, UnknownHostKey) as exc:
        print(f"rdesk: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not str(exc):
        text = "timed out"
    return " ".join(text.split())


def _host_errors() -> tuple[type[BaseException], ...]:
    from rdesk.host.app import HostError
    from rdesk.host.screen.capture import CaptureError
    from rdesk.host.screen.virtual import VirtualDisplayError
    from rdesk.host.security.passwords import PasswordError
    from rdesk.host.security.tls import TLSSetupError

    return (
        HostError, CaptureError, PasswordError, TLSSetupError, VirtualDisplayError,
        *cli_security.errors(),
    )


def _cmd_host(args: argparse.Namespace) -> int:
    from rdesk.host.app import run_host

    settings = HostSettings(
        display=args.display,
        virtual=args.virtual,
        bind=args.bind,
        port=args.port,
        config_dir=args.config_dir,
        cert=args.cert,
        key=args.key,
        allow_tls12=args.tls12,
        password_file=args.password_file,
        max_fps=float(args.max_fps),
        quality=args.quality,
        max_bandwidth=args.max_bandwidth,
        max_viewers=args.max_viewers,
        name=args.name,
        allowed_origins=tuple(args.allow_origin),
        view_password_file=args.view_password_file,
        shared_control=args.shared_control,
        **cli_security.host_settings_fields(args),  # type: ignore[arg-type]
        consent=args.consent,
        consent_timeout=float(args.consent_timeout),
        invites=tuple(args.invite),
    )
    asyncio.run(run_host(settings, out=lambda line: print(line, flush=True)))
    return 0


def _cmd_passwd(args: argparse.Namespace) -> int:
    from rdesk.host.app import PASSWORD_FILE, VIEW_PASSWORD_FILE
    from rdesk.host.security.passwords import read_secret_file, write_password_hash

    if args.password_file is not None:
        password = read_secret_file(args.password_file)
    else:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to ask for the password: use --password-file")
        password = getpass.getpass("New rdesk password: ")
        if password != getpass.getpass("Again: "):
            raise UsageError("the two passwords differ; nothing changed")
    path = args.config_dir / (VIEW_PASSWORD_FILE if args.view else PASSWORD_FILE)
    write_password_hash(path, password)
    kind = "view-only password" if args.view else "password"
    print(f"rdesk: {kind} hash written to {path}")
    return 0


# --- viewer verbs ------------------------------------------------------------------------------


def _password_source(args: argparse.Namespace) -> Callable[[], str]:
    """Where the viewer's password comes from: file, $RDESK_PASSWORD, or the terminal."""

    def source() -> str:
        if args.password_file is not None:
            from rdesk.host.security.passwords import read_secret_file

            return read_secret_file(args.password_file)
        env = os.environ.get("RDESK_PASSWORD")
        if env:
            return env
        if not sys.stdin.isatty():
            raise UsageError("a password is needed: use --password-file or set RDESK_PASSWORD")
        return getpass.getpass(f"Password for {args.url}: ")

    return source


async def _open_viewer(args: argparse.Namespace) -> Connection:
    """Connect as the viewer options say, asking about an unknown host key on the terminal."""
    known = KnownHosts(args.config_dir / "known_hosts")
    address = parse_url(args.url)
    try:
        return await connect(
            address,
            _password_source(args),
            known_hosts=known,
            pinned=args.fingerprint,
            accept_new=args.accept_new,
            name=args.name,
            timeout=args.timeout,
            ssl_context=cli_security.viewer_ssl_context(args),
        )
    except UnknownHostKey as exc:
        if not sys.stdin.isatty():
            raise UsageError(
                f"{address}: unknown host key {exc.fingerprint}; check it against the one "
                "`rdesk host` printed, then pass --fingerprint or --accept-new"
            ) from None
        print(f"The host {address} is not known.\nIts key fingerprint is {exc.fingerprint}.")
        answer = input("Compare it with the one `rdesk host` printed. Trust it? [yes/no] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise UsageError("host key not trusted; nothing was sent") from None
        known.add(address.host, address.port, exc.fingerprint)
        return await connect(
            address,
            _password_source(args),
            known_hosts=known,
            pinned=exc.fingerprint,
            name=args.name,
            timeout=args.timeout,
            ssl_context=cli_security.viewer_ssl_context(args),
        )


def _with_viewer(args: argparse.Namespace, body: Callable[[Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await _open_viewer(args)
        try:
            return await body(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _cmd_watch(args: argparse.Namespace) -> int:
    from rdesk.client.watch import watch

    async def body(conn: Connection) -> None:
        await watch(conn, args.duration, args.json, lambda line: print(line, flush=True))

    _with_viewer(args, body)
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    async def body(conn: Connection) -> None:
        await conn.wait_exact(args.timeout)
        image = conn.framebuffer.image.copy()
        _write_png(image, args.output)
        size = f"{image.width}x{image.height}"
        print(f"rdesk: saved the {size} screen of {conn.address} to {args.output}")

    _with_viewer(args, body)
    return 0


def _write_png(image: object, path: Path) -> None:
    """Write a PIL image atomically, so a failed run leaves no half-written file."""
    import io

    from rdesk.common.files import atomic_write

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # type: ignore[attr-defined]
    try:
        atomic_write(path, buffer.getvalue(), 0o644)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


# --- input verbs (issue 3) ---------------------------------------------------------------------

_BUTTON_BITS = {"left": 1, "middle": 2, "right": 4}
#: Client-side pacing of long `rdesk type` runs, under the host's per-viewer input limit
#: (rdesk.host.input.inject: 1000 events/s, bursts of 2000).
_PACE_BURST = 1500
_PACE_RATE = 800.0


def _input_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    type_ = sub.add_parser("type", help="type text on the host (newlines as Return)")
    _viewer_options(type_)
    type_.add_argument("text", help="the text to type, exactly as given")

    key = sub.add_parser("key", help="press key combinations such as ctrl+alt+t, Return")
    _viewer_options(key)
    key.add_argument("combos", nargs="+", metavar="COMBO", help="keys joined by +, in order")

    def xy(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("x", type=_ranged(0, 16383), help="host pixel column")
        parser.add_argument("y", type=_ranged(0, 16383), help="host pixel row")

    move = sub.add_parser("move", help="move the host's pointer to X Y")
    _viewer_options(move)
    xy(move)

    click = sub.add_parser("click", help="click at X Y")
    _viewer_options(click)
    xy(click)
    click.add_argument("--button", choices=tuple(_BUTTON_BITS), default="left")
    click.add_argument("--double", action="store_true", help="click twice")

    scroll = sub.add_parser("scroll", help="turn the wheel at X Y (positive --dy scrolls down)")
    _viewer_options(scroll)
    xy(scroll)
    scroll.add_argument("--dy", type=_ranged(-10000, 10000), default=0, help="detents down")
    scroll.add_argument("--dx", type=_ranged(-10000, 10000), default=0, help="detents right")


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

    _with_viewer(args, run)
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


def _cmd_connect(args: argparse.Namespace) -> int:
    from rdesk.client.window import ViewerOptions, run_viewer

    parse_url(args.url)  # a bad URL is a one-line error before any window opens
    # The password from a file or $RDESK_PASSWORD; otherwise the window asks with a dialog.
    given = args.password_file is not None or bool(os.environ.get("RDESK_PASSWORD"))
    options = ViewerOptions(
        url=args.url,
        known_hosts=args.config_dir / "known_hosts",
        password=_password_source(args) if given else None,
        fingerprint=args.fingerprint,
        accept_new=args.accept_new,
        view_only=args.view_only,
        fullscreen=args.fullscreen,
        scale=args.scale,
        name=args.name,
        timeout=args.timeout,
        ssl_context=cli_security.viewer_ssl_context(args),
    )
    return run_viewer(options)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "host": _cmd_host,
    "passwd": _cmd_passwd,
    "snapshot": _cmd_snapshot,
    "watch": _cmd_watch,
    "type": _cmd_type,
    "key": _cmd_key,
    "move": _cmd_move,
    "click": _cmd_click,
    "scroll": _cmd_scroll,
    "connect": _cmd_connect,
    **cli_security.COMMANDS,
}
