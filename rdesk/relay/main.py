"""``rdesk relay``: run a relay, and manage its enrolment tokens.

The CLI package wires the verb in with :func:`add_relay_parser` and :func:`run_relay_verb`::

    rdesk relay [--bind ADDR] [--port N] [--cert PEM --key PEM] [--data-dir DIR] [--open]
                [--audit-log FILE] [--grace SECONDS] [--max-sessions N] [--max-hosts N]
                [--redis URL --public-url wss://THIS-INSTANCE:PORT]
    rdesk relay token create [--label TEXT]
    rdesk relay token list
    rdesk relay token revoke ID|LABEL

The relay's data directory (default ``<config dir>/relay``) holds its own TLS identity
(created on first run unless ``--cert/--key`` are given) and the enrolment token hashes.
At start the relay prints the address and its certificate fingerprint, which hosts pin.
SIGTERM (or SIGINT) drains: no new connections, ``move`` to every host, running splices get
``--grace`` seconds to end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rdesk.host.security.tls import TLSSetupError, ensure_host_certificate, server_ssl_context
from rdesk.host.settings import default_config_dir
from rdesk.relay.audit import RelayAuditLog
from rdesk.relay.redisdir import RedisDirectory
from rdesk.relay.server import RelayConfig, RelayServer
from rdesk.relay.tokens import TokenError, TokenStore

__all__ = ["DEFAULT_RELAY_PORT", "add_relay_parser", "relay_data_dir", "run_relay_verb",
           "serve_relay"]

DEFAULT_RELAY_PORT = 8443
Out = Callable[[str], None]


def add_relay_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``relay`` verb (and ``relay token ...``) to ``subparsers``; returns its parser.

    The parser sets ``handler=run_relay_verb``.
    """
    # Imported here, not at the top: the CLI's parser imports this module to call this.
    from rdesk.cli import values
    from rdesk.cli.common import add_verb

    relay = add_verb(subparsers, "relay", "run a relay that lets viewers reach hosts by ID")
    relay.add_argument("--bind", default="0.0.0.0", help="address to listen on (default all)")
    relay.add_argument("--port", type=values.port, default=DEFAULT_RELAY_PORT,
                       help=f"port to listen on (default {DEFAULT_RELAY_PORT})")
    relay.add_argument("--cert", type=Path, help="TLS certificate (PEM); default: the relay's own")
    relay.add_argument("--key", type=Path, help="private key of --cert (PEM)")
    relay.add_argument("--data-dir", type=Path,
                       help="the relay's identity and token hashes (default <config dir>/relay)")
    relay.add_argument("--open", action="store_true",
                       help="let any host that proves it owns its key register, without a token")
    relay.add_argument("--audit-log", type=Path, help="append JSON-lines audit events here")
    relay.add_argument("--redis", metavar="URL",
                       help="share the directory with other instances in this Redis "
                            "(redis://HOST[:PORT][/DB] or unix:///PATH); needs --public-url")
    relay.add_argument("--public-url", metavar="URL",
                       help="this instance's own wss:// address, reachable by hosts directly")
    relay.add_argument("--grace", type=_seconds, default=30.0,
                       help="seconds running sessions get to end on SIGTERM (default 30)")
    relay.add_argument("--max-sessions", type=values.ranged(1, 10**6),
                       default=RelayConfig.max_sessions,
                       help=f"viewers at once (default {RelayConfig.max_sessions})")
    relay.add_argument("--max-hosts", type=values.ranged(1, 10**7),
                       default=RelayConfig.max_hosts,
                       help=f"registered hosts at once (default {RelayConfig.max_hosts})")
    relay.set_defaults(handler=run_relay_verb, relay_command=None)
    verbs = relay.add_subparsers(dest="relay_command", metavar="token")
    token = verbs.add_parser("token", help="manage enrolment tokens")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token and print it (shown once)")
    create.add_argument("--label", default="", help="what the token is for")
    actions.add_parser("list", help="list tokens (their ids and labels, never the tokens)")
    revoke = actions.add_parser("revoke", help="remove a token by id or label")
    revoke.add_argument("name", help="the token's id (or its label, if unique)")
    return relay


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0..3600 seconds, got {text}")
    return value


def relay_data_dir(args: argparse.Namespace) -> Path:
    """``--data-dir``, else ``<config dir>/relay``."""
    if getattr(args, "data_dir", None) is not None:
        return Path(args.data_dir)
    config_dir = getattr(args, "config_dir", None) or default_config_dir()
    return Path(config_dir) / "relay"


def run_relay_verb(args: argparse.Namespace, out: Out | None = None) -> int:
    """Run ``rdesk relay`` (or ``rdesk relay token ...``); returns the exit status.

    User errors (files, ports, tokens) print one line ``rdesk: error: ...`` and return 1.
    """
    say: Out = out or (lambda line: print(line, flush=True))
    try:
        if args.relay_command == "token":
            return _token_verb(args, say)
        if (args.cert is None) != (args.key is None):
            raise TLSSetupError("--cert and --key go together")
        if args.redis is not None and args.public_url is None:
            raise ValueError("--redis needs --public-url (this instance's own wss:// address)")
        if args.public_url is not None and not args.public_url.startswith("wss://"):
            raise ValueError(f"--public-url is a wss:// address, not {args.public_url!r}")
        config = RelayConfig(bind=args.bind, port=args.port, open_enrolment=args.open,
                             max_sessions=args.max_sessions, max_hosts=args.max_hosts,
                             public_url=args.public_url)
        asyncio.run(serve_relay(config, relay_data_dir(args), say, cert=args.cert,
                                key=args.key, audit_log=args.audit_log, grace=args.grace,
                                redis=args.redis))
    except (TLSSetupError, TokenError, OSError, ValueError) as exc:
        print(f"rdesk: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


def _token_verb(args: argparse.Namespace, say: Out) -> int:
    store = TokenStore(relay_data_dir(args))
    if args.token_command == "create":
        token, info = store.create(args.label)
        say(token)
        say(f"rdesk relay: token {info.id} created; give it to the host (it is not shown again)")
    elif args.token_command == "list":
        for info in store.list():
            say(f"{info.id}  {info.created}  {info.label}")
    else:
        info = store.revoke(args.name)
        say(f"rdesk relay: token {info.id} revoked")
    return 0


def _certificate_der(cert: Path) -> bytes:
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSSetupError(f"cannot load certificate {cert}: {_one_line(exc)}") from None
    return loaded.public_bytes(serialization.Encoding.DER)


async def serve_relay(
    config: RelayConfig,
    data_dir: Path,
    out: Out,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    audit_log: Path | None = None,
    grace: float = 30.0,
    redis: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a relay until SIGTERM/SIGINT (or ``stop`` is set), then drain it; a second
    signal during the drain closes everything at once.

    Raises :class:`TLSSetupError` / :class:`TokenError` / ``OSError`` with one-line messages.
    """
    if cert is None or key is None:
        cert, key = ensure_host_certificate(data_dir)
    else:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssl_context = server_ssl_context(cert, key)
    tokens = TokenStore(data_dir)
    audit = RelayAuditLog(audit_log) if audit_log is not None else None
    directory = RedisDirectory(redis) if redis is not None else None
    server = RelayServer(config, ssl_context, _certificate_der(cert), tokens=tokens,
                         directory=directory, on_event=audit)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        try:
            await server.start()
        except OSError as exc:
            # asyncio's own message repeats the address; the errno's text says it plainly
            reason = os.strerror(exc.errno) if exc.errno else _one_line(exc)
            raise OSError(f"cannot listen on {config.bind}:{config.port}: {reason}") from None
        hurry = asyncio.Event()

        def on_signal() -> None:
            (hurry if stop.is_set() else stop).set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        out(f"rdesk relay: listening on wss://{config.bind}:{server.port}")
        out(f"rdesk relay: fingerprint {server.fingerprint}")
        if redis is not None:
            out(f"rdesk relay: instance {config.instance} ({config.public_url}), "
                f"directory {redis}")
        if config.open_enrolment:
            out("rdesk relay: open enrolment: any host that proves its key may register")
        elif not tokens.list():
            out("rdesk relay: no enrolment tokens yet; make one with: rdesk relay token create")
        await stop.wait()
        out(f"rdesk relay: draining (up to {grace:g} s)")
        drain = asyncio.ensure_future(server.drain(grace))
        hurried = asyncio.ensure_future(hurry.wait())
        await asyncio.wait({drain, hurried}, return_when=asyncio.FIRST_COMPLETED)
        hurried.cancel()
        if not drain.done():
            out("rdesk relay: stopping now")
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        out("rdesk relay: stopped")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await server.stop()
        if directory is not None:
            await directory.close()
        if audit is not None:
            audit.close()
