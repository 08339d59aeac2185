"""The host-side verbs: ``rdesk host`` (share this screen) and ``rdesk passwd``.

``rdesk host`` needs the ``host`` extra (X capture and input libraries); it says so in one
line when they are missing. Its libraries are imported only when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from rdesk.cli.common import UsageError, add_deprecated, add_verb, require_host_extra
from rdesk.cli.relay import add_host_relay_options, host_relay_settings
from rdesk.cli.values import (
    ALL_MONITORS,
    bandwidth,
    invite,
    monitor,
    origin,
    path,
    port,
    ranged,
    size,
)
from rdesk.common.runtime import consent_socket_path
from rdesk.host.settings import (
    CAPTURE_BACKENDS,
    CLIPBOARD_POLICIES,
    DEFAULT_CLIPBOARD_MAX,
    DEFAULT_PORT,
    PASSWORD_FILE,
    VIEW_PASSWORD_FILE,
    HostSettings,
)

__all__ = ["add_parsers", "host_settings"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``host`` and ``passwd``."""
    host = add_verb(
        sub, "host", help="share this machine's screen",
        examples=["rdesk host                           # share $DISPLAY on port 7900",
                  "rdesk host --virtual 1280x720        # a private Xvfb",
                  "rdesk host --tls-cert fullchain.pem --tls-key privkey.pem --consent ask"],
    )
    where = host.add_mutually_exclusive_group()
    where.add_argument("--display", help="X display to share (default: $DISPLAY)")
    where.add_argument(
        "--virtual", type=size, metavar="WxH", help="start a private virtual display (Xvfb)"
    )
    host.add_argument(
        "--capture", choices=CAPTURE_BACKENDS, default="auto",
        help="shm: zero-copy shared memory with X DAMAGE; mss: portable, polls and compares "
        "frames; auto: shm where it works, else mss",
    )
    host.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    host.add_argument("--port", type=port, default=DEFAULT_PORT, help="TLS port")
    host.add_argument(
        "--tls-cert", type=path, help="TLS certificate (PEM) instead of the self-signed one"
    )
    host.add_argument("--tls-key", type=path, help="private key (PEM) of --tls-cert")
    add_deprecated(host, "--cert", "--tls-cert", "tls_cert", type=path)
    add_deprecated(host, "--key", "--tls-key", "tls_key", type=path)
    host.add_argument(
        "--tls12", action="store_true", help="also accept TLS 1.2 (ECDHE+AEAD suites only)"
    )
    control = host.add_mutually_exclusive_group()
    control.add_argument(
        "--password-file", type=path, help="control password in this file (first line)"
    )
    control.add_argument(
        "--password-hash-file", type=path, metavar="FILE",
        help="control password's scrypt hash in this file, as `rdesk passwd` writes it "
        "(e.g. a mounted secret; default: CONFIG_DIR/password if it exists)",
    )
    host.add_argument(
        "--quality", type=ranged(1, 100), default=80,
        help="highest JPEG quality; lowered automatically on slow links",
    )
    host.add_argument("--max-fps", type=ranged(1, 240), default=60, help="capture rate cap")
    host.add_argument(
        "--max-bandwidth", type=bandwidth, default=None, metavar="BITS",
        help="most bits/s sent to each viewer, e.g. 10M or 512k (default: the link decides)",
    )
    host.add_argument(
        "--max-viewers", type=ranged(1, 256), default=16, help="more viewers are refused"
    )
    host.add_argument("--name", default="", help="host name shown to viewers")
    view = host.add_mutually_exclusive_group()
    view.add_argument(
        "--view-password-file", type=path, help="view-only password in this file (first line)"
    )
    view.add_argument(
        "--view-password-hash-file", type=path, metavar="FILE",
        help="view-only password's scrypt hash in this file, as `rdesk passwd --view` writes "
        "it (default: CONFIG_DIR/view-password if it exists)",
    )
    host.add_argument(
        "--shared-control", action="store_true", help="let every control viewer send input at once"
    )
    host.add_argument(
        "--consent",
        choices=("auto", "ask"),
        default="auto",
        help="ask: the local user accepts each viewer, on this terminal or with `rdesk "
        "consent`; auto: admit any valid credential (unattended access)",
    )
    host.add_argument(
        "--consent-socket", type=path, default=None, metavar="PATH",
        help="with --consent ask: the socket `rdesk consent` answers on (default: "
        "$XDG_RUNTIME_DIR/rdesk/consent.sock)",
    )
    host.add_argument(
        "--consent-timeout", type=ranged(1, 3600), default=30, help="seconds to accept"
    )
    host.add_argument(
        "--invite",
        action="append",
        default=[],
        type=invite,
        metavar="ROLE[:MINUTES]",
        help="print a one-time invite code for ROLE (control|view), valid MINUTES (30)",
    )
    host.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        type=origin,
        metavar="URL",
        help="also let browser pages from this origin (https://NAME[:PORT]) connect; repeatable",
    )
    _add_security_options(host)
    add_host_relay_options(host)
    _add_session_options(host)
    _add_transfer_options(host)
    host.set_defaults(handler=_cmd_host)

    passwd = add_verb(
        sub, "passwd", help="set the host's password (stored as an scrypt hash)",
        examples=["rdesk passwd", "rdesk passwd --view --password-file ~/view-pass"],
    )
    passwd.add_argument(
        "--password-file", type=path, help="read the new password from this file"
    )
    passwd.add_argument(
        "--view", action="store_true", help="set the view-only password instead"
    )
    passwd.set_defaults(handler=_cmd_passwd)


def _add_session_options(host: argparse.ArgumentParser) -> None:
    """The virtual desktop's session and the clipboard (docs/session.md)."""
    host.add_argument(
        "--session", default=None, metavar="CMD",
        help="with --virtual: the session to run in it (default: openbox and xterm when "
        "installed; 'none': a bare display); the host stops when it ends",
    )
    host.add_argument(
        "--virtual-server", choices=("xvfb", "xvnc"), default="xvfb",
        help="with --virtual: the X server (xvfb, the default; xvnc, TigerVNC's Xvnc with its "
        "VNC port off, lets viewers resize the desktop to their window)",
    )
    host.add_argument(
        "--keep-running", action="store_true",
        help="with --virtual: keep hosting after the session ends",
    )
    host.add_argument(
        "--clipboard", choices=CLIPBOARD_POLICIES, default="to-host",
        help="clipboard text with control viewers: both ways, to-viewer (host's copies go "
        "out), to-host (viewers paste in; the default), or off",
    )
    host.add_argument(
        "--clipboard-primary", action="store_true",
        help="also sync the PRIMARY selection (mouse selection), not only CLIPBOARD",
    )
    host.add_argument(
        "--clipboard-max", type=ranged(1, 64 << 20), default=DEFAULT_CLIPBOARD_MAX,
        metavar="BYTES", help=f"largest clipboard text either way ({DEFAULT_CLIPBOARD_MAX})",
    )
    host.add_argument(
        "--monitor", type=_monitor, default=None, metavar="N|all",
        help="share only RandR monitor N (xrandr --listmonitors), or all of the screen (all)",
    )


def _add_transfer_options(host: argparse.ArgumentParser) -> None:
    """File transfer (docs/transfer.md)."""
    host.add_argument(
        "--transfer", choices=("both", "upload", "download", "off"), default="both",
        help="file transfer with control viewers, confined to --transfer-dir: both ways "
        "(the default), upload (viewer to host) only, download only, or off",
    )
    host.add_argument(
        "--transfer-dir", type=path, default=None, metavar="DIR",
        help="the only folder files are written to or read from (default ~/rdesk-transfer)",
    )
    host.add_argument(
        "--transfer-max-file", type=ranged(0, 1 << 40), default=4 << 30, metavar="BYTES",
        help="largest file either way (4 GiB)",
    )
    host.add_argument(
        "--transfer-max-session", type=ranged(0, 1 << 40), default=16 << 30, metavar="BYTES",
        help="most bytes one viewer session may transfer (16 GiB)",
    )
    host.add_argument(
        "--transfer-view-only", action="store_true",
        help="let view-only viewers transfer files too (off: only control viewers may)",
    )


def _monitor(text: str) -> int | None:
    """:func:`~rdesk.cli.values.monitor`, with the whole screen as ``None`` (the settings')."""
    number = monitor(text)
    return None if number == ALL_MONITORS else number


def _add_security_options(host: argparse.ArgumentParser) -> None:
    """Client certificates, the audit log and session recording."""
    host.add_argument(
        "--require-client-cert",
        action="store_true",
        help="admit only viewers with a certificate of the CA (rdesk certs); role from it",
    )
    host.add_argument(
        "--ca-dir", type=path, default=None, help="the viewer CA (default: CONFIG_DIR/ca)"
    )
    host.add_argument(
        "--audit-log", type=path, default=None, metavar="FILE",
        help="append security events to FILE as JSON lines (mode 0600)",
    )
    host.add_argument(
        "--record", type=path, default=None, metavar="DIR",
        help="record each viewer session's screen stream into DIR (rdesk play replays it)",
    )
    host.add_argument(
        "--record-input", action="store_true",
        help="also record viewers' pointer and key input (off by default: keystrokes)",
    )
    host.add_argument(
        "--record-clipboard", action="store_true",
        help="also record the clipboard texts exchanged (off by default: a clipboard may "
        "hold a password)",
    )
    _add_limit_options(host)


def _add_limit_options(host: argparse.ArgumentParser) -> None:
    """Connection caps, authentication threads and session limits (docs/security.md)."""
    host.add_argument(
        "--max-handshakes-per-source", type=ranged(1, 4096), default=16, metavar="N",
        help="connections one address may have in the TLS/websocket handshake; more are "
        "reset at accept (default 16)",
    )
    host.add_argument(
        "--max-handshakes", type=ranged(1, 65536), default=128, metavar="N",
        help="connections in the handshake from all addresses (default 128)",
    )
    host.add_argument(
        "--handshake-timeout", type=ranged(1, 600), default=10, metavar="SECONDS",
        help="longest TLS, and websocket, handshake (default 10)",
    )
    host.add_argument(
        "--auth-workers", type=ranged(1, 64), default=1, metavar="N",
        help="threads checking passwords, apart from the encoders' (default 1)",
    )
    host.add_argument(
        "--idle-timeout", type=ranged(0, 10**7), default=0, metavar="SECONDS",
        help="close a viewer without input or control request for this long (default 0: never)",
    )
    host.add_argument(
        "--max-session", type=ranged(0, 10**7), default=0, metavar="SECONDS",
        help="close every session after this long (default 0: no limit)",
    )
    host.add_argument(
        "--held-input-timeout", type=ranged(1, 600), default=3, metavar="SECONDS",
        help="release a silent controlling viewer's held keys and buttons after this long "
        "(default 3)",
    )
    host.add_argument(
        "--block-keys", type=_block_keys, default=frozenset({"vt", "zap"}), metavar="LIST",
        help="key combinations dropped from control viewers, comma-separated: vt "
        "(Ctrl+Alt+Fn), zap (Ctrl+Alt+Backspace), cad (Ctrl+Alt+Del), sysrq (Alt+SysRq), "
        "super (Super+key), or none; every one is audited (default vt,zap)",
    )


def _block_keys(text: str) -> frozenset[str]:
    from rdesk.host.security.keypolicy import parse_blocked

    try:
        return parse_blocked(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def host_settings(args: argparse.Namespace) -> HostSettings:
    """The :class:`HostSettings` the ``rdesk host`` options ask for."""
    return HostSettings(
        display=args.display,
        virtual=args.virtual,
        capture=args.capture,
        bind=args.bind,
        port=args.port,
        config_dir=args.config_dir,
        cert=args.tls_cert,
        key=args.tls_key,
        allow_tls12=args.tls12,
        password_file=args.password_file,
        password_hash_file=args.password_hash_file,
        max_fps=float(args.max_fps),
        quality=args.quality,
        max_bandwidth=args.max_bandwidth,
        max_viewers=args.max_viewers,
        name=args.name,
        allowed_origins=tuple(args.allow_origin),
        view_password_file=args.view_password_file,
        view_password_hash_file=args.view_password_hash_file,
        shared_control=args.shared_control,
        require_client_cert=args.require_client_cert,
        ca_dir=args.ca_dir,
        audit_log=args.audit_log,
        record_dir=args.record,
        record_input=args.record_input,
        record_clipboard=args.record_clipboard,
        max_handshakes_per_source=args.max_handshakes_per_source,
        max_handshakes=args.max_handshakes,
        handshake_timeout=float(args.handshake_timeout),
        auth_workers=args.auth_workers,
        idle_timeout=float(args.idle_timeout),
        max_session=float(args.max_session),
        held_input_timeout=float(args.held_input_timeout),
        block_keys=args.block_keys,
        consent=args.consent,
        consent_timeout=float(args.consent_timeout),
        consent_socket=args.consent_socket,
        invites=tuple(args.invite),
        session=args.session,
        virtual_server=args.virtual_server,
        keep_running=args.keep_running,
        clipboard=args.clipboard,
        clipboard_primary=args.clipboard_primary,
        clipboard_max=args.clipboard_max,
        monitor=args.monitor,
        transfer=args.transfer,
        transfer_dir=args.transfer_dir,
        transfer_max_file=args.transfer_max_file,
        transfer_max_session=args.transfer_max_session,
        transfer_view_only=args.transfer_view_only,
        **host_relay_settings(args),  # type: ignore[arg-type]
    )


def _cmd_host(args: argparse.Namespace) -> int:
    require_host_extra("host")
    from rdesk.host.app import run_host

    settings = host_settings(args)
    _require_consent_terminal(settings.consent, settings.consent_socket)
    asyncio.run(run_host(settings, out=lambda line: print(line, flush=True)))
    return 0


def _require_consent_terminal(consent: str, socket_path: Path | None) -> None:
    """Refuse ``--consent ask`` when nobody could answer: no terminal on standard input (under
    systemd or ``nohup`` it is at end of file) and no runtime directory for the consent socket
    that ``rdesk consent`` answers on; every viewer would wait out the consent timeout and be
    rejected while the host looked healthy (issue 18)."""
    if consent == "ask" and not sys.stdin.isatty() and socket_path is None \
            and consent_socket_path() is None:
        raise UsageError(
            "--consent ask needs a terminal to ask on (stdin is not one) or a runtime "
            "directory ($XDG_RUNTIME_DIR) for the consent socket of `rdesk consent`; give "
            "--consent-socket PATH, or use --consent auto with a password for unattended access"
        )


def _cmd_passwd(args: argparse.Namespace) -> int:
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
    # the other password's salt and parameters, so a login costs one scrypt derivation
    other = args.config_dir / (PASSWORD_FILE if args.view else VIEW_PASSWORD_FILE)
    write_password_hash(path, password, like=other)
    kind = "view-only password" if args.view else "password"
    print(f"rdesk: {kind} hash written to {path}")
    return 0
