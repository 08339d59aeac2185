"""``rdesk relay``: the relay's flags, ``rdesk relay token create|list|revoke``, and
``rdesk relay use`` (the relay viewers use).

::

    rdesk relay [--bind ADDR] [--port N] [--cert PEM --key PEM] [--data-dir DIR] [--open]
                [--audit-log FILE] [--grace SECONDS] [--max-sessions N] [--max-hosts N]
                [--redis URL --public-url wss://THIS-INSTANCE:PORT] [--allow-origin URL ...]
                [--id-burst N] [--id-rate PER_SECOND] [--source-burst N]
                [--source-rate PER_SECOND] [--rendezvous-timeout SECONDS]
    rdesk relay token create [--label TEXT] | list | revoke ID|LABEL
    rdesk relay use wss://RELAY[:PORT] [--fingerprint SHA256:...]

The relay's data directory (default ``<config dir>/relay``) holds its own TLS identity
(created on first run unless ``--cert/--key`` are given) and the enrolment token hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from rdesk.cli import values
from rdesk.cli.common import add_verb
from rdesk.host.settings import default_config_dir
from rdesk.relay.config import DEFAULT_PORT as DEFAULT_RELAY_PORT
from rdesk.relay.config import SPLICERS, RelayConfig

__all__ = ["add_parsers", "relay_data_dir", "run_relay_verb"]

Out = Callable[[str], None]


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``relay`` verb (and ``relay token ...``) to ``subparsers``; returns its parser.

    The parser sets ``handler=run_relay_verb``.
    """
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
    relay.add_argument("--id-burst", type=values.ranged(1, 10**6), default=RelayConfig.id_rate[1],
                       help="viewers per host ID at once, on all instances sharing --redis "
                            f"(default {RelayConfig.id_rate[1]})")
    relay.add_argument("--id-rate", type=_rate, default=RelayConfig.id_rate[0],
                       metavar="PER_SECOND",
                       help="then this many viewers per second per host ID "
                            f"(default {RelayConfig.id_rate[0]:g})")
    relay.add_argument("--source-burst", type=values.ranged(1, 10**6),
                       default=RelayConfig.connect_rate[1],
                       help="viewers (and, separately, data connections) per source address "
                            f"at once, on all instances sharing --redis "
                            f"(default {RelayConfig.connect_rate[1]})")
    relay.add_argument("--source-rate", type=_rate, default=RelayConfig.connect_rate[0],
                       metavar="PER_SECOND",
                       help="then this many per second per source address "
                            f"(default {RelayConfig.connect_rate[0]:g})")
    relay.add_argument("--rendezvous-timeout", type=_seconds,
                       default=RelayConfig.rendezvous_timeout,
                       help="seconds a viewer waits for its host to answer "
                            f"(default {RelayConfig.rendezvous_timeout:g})")
    relay.add_argument("--heartbeat", type=_heartbeat, default=RelayConfig.heartbeat,
                       help="seconds between a host's heartbeats, told to each host; a host "
                            "silent three times as long is dropped, and a host whose relay "
                            "stops answering one (a NAT that forgot its mapping) reconnects "
                            f"(default {RelayConfig.heartbeat:g})")
    relay.add_argument("--allow-origin", action="append", default=[], type=values.origin,
                       metavar="URL",
                       help="also let browser pages from this origin (https://NAME[:PORT]) "
                            "open /connect; repeatable (default: the relay's own pages only)")
    relay.add_argument("--grace", type=_seconds, default=30.0,
                       help="seconds running sessions get to end on SIGTERM (default 30)")
    relay.add_argument("--max-sessions", type=values.ranged(1, 10**6),
                       default=RelayConfig.max_sessions,
                       help=f"viewers at once (default {RelayConfig.max_sessions})")
    relay.add_argument("--max-hosts", type=values.ranged(1, 10**7),
                       default=RelayConfig.max_hosts,
                       help=f"registered hosts at once (default {RelayConfig.max_hosts})")
    relay.add_argument("--splice-port", type=values.port, default=None,
                       help="the raw lane's plain TCP port (default: --port + 1, 8444; "
                            "0: any free port)")
    relay.add_argument("--splice-address", metavar="HOST:PORT", type=_splice_address,
                       help="the splice address told to viewers and hosts (a balancer's), "
                            "instead of this instance's own")
    relay.add_argument("--no-splice", action="store_true",
                       help="no raw lane: every session goes through the websocket tunnel")
    relay.add_argument("--splicer", choices=SPLICERS, default="auto",
                       help="who copies raw lane bytes: the kernel (BPF sockhash; needs root "
                            "or CAP_BPF and CAP_NET_ADMIN), userspace, or auto (default: the "
                            "kernel when it can, else userspace with one log line why)")
    relay.set_defaults(handler=run_relay_verb, relay_command=None)
    verbs = relay.add_subparsers(dest="relay_command", metavar="token|use")
    use = verbs.add_parser("use", help="save the relay viewers reach hosts by ID through "
                           "(CONFIG_DIR/viewer-relay)")
    use.add_argument("url", help="the relay, wss://HOST[:PORT]")
    use.add_argument("--fingerprint", metavar="SHA256:...",
                     help="pin the relay's key, as `rdesk relay` prints it")
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


def _heartbeat(text: str) -> float:
    value = _seconds(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1..3600 seconds, got {text}")
    return value


def _splice_address(text: str) -> str:
    from rdesk.relay.rawrelay import split_address

    try:
        split_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_one_line(exc)) from None
    return text.strip()


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number per second: {text!r}") from None
    if not 0 < value <= 10**6:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 10^6, got {text}")
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
    # The relay's engine needs the host's certificate code: imported only when a relay runs,
    # so building the parser (and a viewer-only install) never loads it.
    from rdesk.host.security.tls import TLSSetupError
    from rdesk.relay.rawsplice import KernelSpliceUnavailable
    from rdesk.relay.run import serve_relay
    from rdesk.relay.tokens import TokenError

    say: Out = out or (lambda line: print(line, flush=True))
    if args.relay_command == "use":
        from rdesk.cli.relay import save_relay

        return save_relay(args)
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
                             public_url=args.public_url,
                             allowed_origins=tuple(args.allow_origin),
                             id_rate=(args.id_rate, args.id_burst),
                             connect_rate=(args.source_rate, args.source_burst),
                             rendezvous_timeout=args.rendezvous_timeout,
                             heartbeat=args.heartbeat, expiry=3 * args.heartbeat,
                             splice=not args.no_splice, splice_port=args.splice_port,
                             splice_address=args.splice_address,
                             splicer=args.splicer)
        asyncio.run(serve_relay(config, relay_data_dir(args), say, cert=args.cert,
                                key=args.key, audit_log=args.audit_log, grace=args.grace,
                                redis=args.redis))
    except (TLSSetupError, TokenError, OSError, ValueError) as exc:
        print(f"rdesk: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KernelSpliceUnavailable as exc:
        print(f"rdesk: error: the kernel splicer cannot be set up: {_one_line(exc)} "
              "(--splicer auto copies in userspace then)", file=sys.stderr)
        return 1
    return 0


def _token_verb(args: argparse.Namespace, say: Out) -> int:
    from rdesk.relay.tokens import TokenStore

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
