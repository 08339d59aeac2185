"""The viewer verbs: ``rdesk connect`` (the window), ``rdesk snapshot`` and ``rdesk watch``,
and the viewer options and connection set-up the input verbs share with them.

Nothing here needs the host extra: these verbs run on a viewer-only install.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from rdesk.cli import exits
from rdesk.cli.common import UsageError, add_deprecated, add_verb
from rdesk.cli.relay import add_relay_options, relay_target, remember_relay_pin
from rdesk.cli.values import monitor, path, size
from rdesk.client.connection import Connection, connect, parse_url
from rdesk.client.framebuffer import DEFAULT_MAX_SCREEN_PIXELS, DEFAULT_MAX_SCREEN_SIDE
from rdesk.client.known_hosts import KnownHosts, UnknownHostKey

__all__ = [
    "add_connect_parser",
    "add_parsers",
    "add_viewer_options",
    "save_snapshot",
    "viewer_ssl_context",
    "with_viewer",
]

T = TypeVar("T")


def add_viewer_options(parser: argparse.ArgumentParser, *, url: bool = True) -> None:
    """The host URL and how to log in and trust it: the options of every viewer verb.

    ``url`` may also name a saved host of the config file (``[hosts.NAME]``, docs/config.md);
    ``url=False`` declares the options only (``rdesk do`` reads them among its actions).
    """
    if url:
        parser.add_argument(
            "url", help="the host: wss://HOST:PORT, HOST:PORT, or a saved host's name"
        )
    parser.add_argument(
        "--password-file", type=path, help="read the password from this file (first line)"
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
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait")
    # A client certificate (`rdesk certs issue`) for hosts started with --require-client-cert.
    parser.add_argument(
        "--client-cert", type=path, help="client certificate (PEM) for hosts that need one"
    )
    parser.add_argument("--client-key", type=path, help="private key (PEM) of --client-cert")
    parser.add_argument(
        "--ca-file", type=path, metavar="PEM",
        help="trust a host whose certificate this CA signed, for the host name in the URL, "
        "instead of a pin (known_hosts is then not used)",
    )
    parser.add_argument(
        "--monitor", type=monitor, default=None, metavar="N|all",
        help="share RandR monitor N of the host (or all of its screen) before acting; this "
        "switches the host's monitor for every viewer, as F8 -> Monitor does",
    )
    parser.add_argument(
        "--no-video", action="store_true",
        help="never take moving regions as H.264 video (tiles only)",
    )
    parser.add_argument(
        "--max-screen", type=size, default=None, metavar="WxH",
        help="refuse a host whose screen has more pixels than WxH (default "
        f"{DEFAULT_MAX_SCREEN_SIDE}x{DEFAULT_MAX_SCREEN_SIDE}): what a hostile host can make "
        "this viewer allocate",
    )
    add_relay_options(parser)
    add_deprecated(parser, "--cert", "--client-cert", "client_cert", type=path)
    add_deprecated(parser, "--key", "--client-key", "client_key", type=path)


def max_pixels(args: argparse.Namespace) -> int:
    """The largest host screen ``--max-screen`` accepts, in pixels."""
    limit = getattr(args, "max_screen", None)
    return DEFAULT_MAX_SCREEN_PIXELS if limit is None else limit[0] * limit[1]


def viewer_ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context the viewer options ask for (``None``: the default one).

    With ``--ca-file`` it verifies the host's chain to that CA and its host name, which
    :func:`~rdesk.client.connection.connect` then takes in place of a pin.
    """
    cert, key = getattr(args, "client_cert", None), getattr(args, "client_key", None)
    cafile = getattr(args, "ca_file", None)
    if cert is None and key is None and cafile is None:
        return None
    from rdesk.client.tls import client_ssl_context

    return client_ssl_context(cafile, cert=cert, key=key)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``snapshot``, ``watch`` and ``connect``."""
    snap = add_verb(
        sub, "snapshot", help="save the host's screen as a PNG, pixel-exact",
        examples=["rdesk snapshot wss://desk.example:7900 -o shot.png",
                  "rdesk snapshot work -o shot.png --json   # a saved host; JSON on stdout"],
    )
    add_viewer_options(snap)
    snap.add_argument("-o", "--output", type=path, required=True, help="PNG file to write")
    snap.add_argument(
        "--json", action="store_true",
        help='print {"file", "width", "height", "host", "fingerprint"} as one JSON line',
    )
    snap.set_defaults(handler=_cmd_snapshot)

    watch = add_verb(
        sub, "watch", help="follow the screen headless and print link figures once a second",
        examples=["rdesk watch wss://desk.example:7900 --duration 10 --json"],
    )
    add_viewer_options(watch)
    watch.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    watch.add_argument("--json", action="store_true", help="print JSON lines")
    watch.set_defaults(handler=_cmd_watch)


def add_connect_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``connect``: last in ``rdesk --help``, as it always was."""
    connect_ = add_verb(
        sub, "connect", help="open the desktop viewer window",
        examples=["rdesk connect wss://desk.example:7900", "rdesk connect work   # a saved host"],
    )
    add_viewer_options(connect_)
    connect_.add_argument("--view-only", action="store_true", help="send no input")
    connect_.add_argument("--fullscreen", action="store_true", help="start full screen")
    connect_.add_argument(
        "--scale", choices=("fit", "1"), default="fit", help="fit to window or 1:1"
    )
    connect_.add_argument(
        "--resize-desktop", action="store_true",
        help="make the host's virtual desktop the window's size (F8: Resize desktop to window)",
    )
    connect_.set_defaults(handler=_cmd_connect)


# --- connecting --------------------------------------------------------------------------------


def _password_source(args: argparse.Namespace) -> Callable[[], str]:
    """Where the viewer's password comes from: file, $RDESK_PASSWORD, or the terminal."""

    def source() -> str:
        if args.password_file is not None:
            # Plain file reading only: no host-only library behind it.
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
    target, relay_pin = relay_target(args)
    address = parse_url(target)
    try:
        return await connect(
            address,
            _password_source(args),
            known_hosts=known,
            pinned=args.fingerprint,
            accept_new=args.accept_new,
            name=args.name,
            timeout=args.timeout,
            ssl_context=viewer_ssl_context(args),
            relay_pin=relay_pin,
            video=not getattr(args, "no_video", False),
            max_pixels=max_pixels(args),
        )
    except UnknownHostKey as exc:
        if not sys.stdin.isatty():
            raise UsageError(
                f"{address}: unknown host key {exc.fingerprint}; check it against the one "
                "`rdesk host` printed, then pass --fingerprint or --accept-new",
                exits.HOST_KEY_UNKNOWN,
            ) from None
        print(f"The host {address} is not known.\nIts key fingerprint is {exc.fingerprint}.")
        answer = input("Compare it with the one `rdesk host` printed. Trust it? [yes/no] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise UsageError(
                "host key not trusted; nothing was sent", exits.HOST_KEY_UNKNOWN
            ) from None
        known.add(address.host, address.port, exc.fingerprint)
        return await connect(
            address,
            _password_source(args),
            known_hosts=known,
            pinned=exc.fingerprint,
            name=args.name,
            timeout=args.timeout,
            ssl_context=viewer_ssl_context(args),
            video=not getattr(args, "no_video", False),
            max_pixels=max_pixels(args),
        )


def with_viewer(args: argparse.Namespace, body: Callable[[Connection], Awaitable[T]]) -> T:
    """Connect as ``args`` say, run ``body`` on the connection, close it; return the result."""

    async def run() -> T:
        conn = await _open_viewer(args)
        try:
            if getattr(args, "monitor", None) is not None:
                await choose_monitor(conn, args.monitor, args.timeout)
            return await body(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


async def choose_monitor(conn: Connection, index: int, timeout: float) -> None:
    """Have the host share monitor ``index`` (``-1``: the whole screen) and wait until this
    viewer's screen is it. A refusal (a notice: no such monitor, not holding control) is a
    one-line :class:`UsageError` with exit status 7 (refused)."""
    try:
        # The host lists its monitors and the shared one right after the welcome.
        await conn.wait_for(lambda: bool(conn.monitors), timeout)
    except TimeoutError:
        raise UsageError(f"{conn.address} did not list its monitors", exits.REFUSED) from None
    if index != -1 and index not in conn.monitors:
        known = ", ".join(map(str, sorted(conn.monitors)))
        raise UsageError(f"{conn.address} has no monitor {index} (its monitors: {known}; "
                         "'all' for the whole screen)", exits.REFUSED)
    if conn.monitor == index:
        return
    before, was = conn.notices, conn.framebuffer.size  # a new notice is a new list
    await conn.select_monitor(index)
    info = conn.monitors.get(index)
    if info is not None:
        size = (info.width, info.height)
    else:  # the whole screen: what the monitors span (the screen message follows the switch)
        size = (max(m.x + m.width for m in conn.monitors.values()),
                max(m.y + m.height for m in conn.monitors.values()))

    def switched() -> bool:
        return conn.monitor == index and (conn.framebuffer.size == size or (
            info is None and conn.framebuffer.size != was))

    try:
        await conn.wait_for(lambda: switched() or conn.notices is not before, timeout)
    except TimeoutError:
        raise UsageError(f"{conn.address} did not switch to monitor {index} within "
                         f"{timeout:g} s", exits.REFUSED) from None
    if not switched():
        raise UsageError(f"{conn.address} refused monitor {index}: {conn.notices[-1]}",
                         exits.REFUSED)


# --- the verbs ---------------------------------------------------------------------------------


def _cmd_watch(args: argparse.Namespace) -> int:
    from rdesk.client.watch import watch

    async def body(conn: Connection) -> None:
        await watch(conn, args.duration, args.json, lambda line: print(line, flush=True))

    with_viewer(args, body)
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    async def body(conn: Connection) -> None:
        await save_snapshot(conn, args.output, args.timeout, json_out=args.json)

    with_viewer(args, body)
    return 0


async def save_snapshot(conn: Connection, file: Path, timeout: float, *, json_out: bool) -> None:
    """Wait until the picture is pixel-exact, write it to ``file`` as a PNG, say so on stdout.

    ``json_out``: the line is JSON (``file``, ``width``, ``height``, ``host``,
    ``fingerprint``), for scripts.
    """
    await conn.wait_exact(timeout)
    image = conn.framebuffer.image.copy()
    _write_png(image, file)
    if json_out:
        print(json.dumps({
            "file": str(file), "width": image.width, "height": image.height,
            "host": str(conn.address), "fingerprint": conn.host_fingerprint,
        }), flush=True)
    else:
        size = f"{image.width}x{image.height}"
        print(f"rdesk: saved the {size} screen of {conn.address} to {file}", flush=True)


def _write_png(image: object, file: Path) -> None:
    """Write a PIL image atomically, so a failed run leaves no half-written file."""
    import io

    from rdesk.common.files import atomic_write

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # type: ignore[attr-defined]
    try:
        atomic_write(file, buffer.getvalue(), 0o644)
    except OSError as exc:
        raise UsageError(f"cannot write {file}: {exc.strerror or exc}") from None


def _cmd_connect(args: argparse.Namespace) -> int:
    from rdesk.client.tk.window import ViewerOptions, run_viewer

    target, relay_pin = relay_target(args)
    parse_url(target)  # a bad URL is a one-line error before any window opens
    remember_relay_pin(args, target, relay_pin)  # the window checks the relay by known_hosts
    # The password from a file or $RDESK_PASSWORD; otherwise the window asks with a dialog.
    given = args.password_file is not None or bool(os.environ.get("RDESK_PASSWORD"))
    options = ViewerOptions(
        url=target,
        known_hosts=args.config_dir / "known_hosts",
        password=_password_source(args) if given else None,
        fingerprint=args.fingerprint,
        accept_new=args.accept_new,
        view_only=args.view_only,
        fullscreen=args.fullscreen,
        scale=args.scale,
        resize_desktop=args.resize_desktop,
        name=args.name,
        timeout=args.timeout,
        ssl_context=viewer_ssl_context(args),
        video=not args.no_video,
        max_pixels=max_pixels(args),
        monitor=args.monitor,
    )
    return run_viewer(options)
