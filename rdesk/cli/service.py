"""``rdesk service install [--user] [--print] [-- HOST FLAGS...]``: the host as a systemd unit.

The unit runs ``rdesk host`` with the flags given after ``--`` (or, without any, those of the
config file's ``[host]`` section, which the host reads itself), restarts it on failure, logs
its output to the journal, and confines it with the hardening systemd offers (docs/service.md).

Nothing secret goes into the unit or the journal: the host must log in with a stored password
hash (``rdesk passwd``, ``--password-hash-file``) or a password file, never a one-time
password (it would be printed to the journal), and ``--invite`` codes are refused for the same
reason. With ``--consent ask`` the local user answers with ``rdesk consent``; a system unit
gets a private runtime directory (``/run/rdesk``) for the consent socket.

:func:`render_unit` is pure: it turns a :class:`UnitSpec` into the unit file's text.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import pwd
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from rdesk.cli.common import HelpFormatter, UsageError, add_common_options, add_verb
from rdesk.cli.values import path
from rdesk.common.files import atomic_write
from rdesk.host.settings import PASSWORD_FILE, HostSettings, default_config_dir

__all__ = ["UNIT_NAME", "UnitSpec", "add_parsers", "exec_line", "render_unit"]

UNIT_NAME = "rdesk-host.service"
#: The consent socket of a system unit, in the runtime directory systemd makes for it.
SYSTEM_CONSENT_SOCKET = Path("/run/rdesk/consent.sock")
#: Hardening both kinds of unit get (a user manager applies these without privileges).
_COMMON_HARDENING = (
    "NoNewPrivileges=yes",
    "LockPersonality=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "RestrictNamespaces=yes",
    # AF_UNIX: the X server, the consent socket; AF_INET/AF_INET6: viewers and the relay.
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallErrorNumber=EPERM",
    # Certificates, keys, the audit log and recordings are private to the host's user.
    "UMask=0077",
)
#: Hardening that needs the system manager (mount namespaces, capabilities).
_SYSTEM_HARDENING = (
    "ProtectSystem=strict",
    "ProtectHome=read-only",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
)


@dataclasses.dataclass(frozen=True)
class UnitSpec:
    """What the unit says. ``argv``: the host's command line, absolute paths."""

    argv: tuple[str, ...]
    user_unit: bool
    #: The system unit's ``User=`` (``None`` for a user unit).
    run_as: str | None = None
    #: Folders the host writes (config dir, transfer folder, audit log's, recordings).
    writable: tuple[Path, ...] = ()
    #: Share the system's X sockets into the private /tmp (not with ``--virtual``, whose
    #: Xvfb makes its own there).
    x11_sockets: bool = True
    environment: tuple[tuple[str, str], ...] = ()
    #: A private ``/run/rdesk`` (mode 0700) for the consent socket.
    runtime_directory: bool = False


_PLAIN = re.compile(r"[A-Za-z0-9_./:=+,@-]+")


def _quoted(word: str) -> str:
    """One word of a systemd command line: quoted when needed, ``%`` and ``$`` escaped."""
    if not _PLAIN.fullmatch(word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word.replace("%", "%%").replace("$", "$$")


def exec_line(argv: Sequence[str]) -> str:
    """``argv`` as an ``ExecStart=`` value that systemd splits back into the same words."""
    return " ".join(_quoted(word) for word in argv)


def render_unit(spec: UnitSpec) -> str:
    """The unit file for ``spec`` (pure)."""
    service = [
        "Type=simple",
        f"ExecStart={exec_line(spec.argv)}",
        "Restart=on-failure",
        "RestartSec=5",
        # Output to the journal as it happens, under one name (journalctl -t rdesk-host).
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=rdesk-host",
        "Environment=PYTHONUNBUFFERED=1",
        *(f"Environment={_quoted(f'{key}={value}')}" for key, value in spec.environment),
        *_COMMON_HARDENING,
    ]
    if not spec.user_unit:
        service.insert(0, f"User={spec.run_as}")
        service += list(_SYSTEM_HARDENING)
        service += [f"ReadWritePaths=-{_quoted(str(folder))}" for folder in spec.writable]
        if spec.x11_sockets:
            service.append("BindReadOnlyPaths=-/tmp/.X11-unix")
        if spec.runtime_directory:
            service += ["RuntimeDirectory=rdesk", "RuntimeDirectoryMode=0700"]
    unit = [
        "# Written by `rdesk service install` (docs/service.md).",
        "[Unit]",
        "Description=rdesk remote desktop host",
        "Documentation=man:systemd.exec(5)",
    ]
    if not spec.user_unit:
        unit += ["After=network-online.target", "Wants=network-online.target"]
    target = "default.target" if spec.user_unit else "multi-user.target"
    return "\n".join([*unit, "", "[Service]", *service, "", "[Install]",
                      f"WantedBy={target}", ""])


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``service`` (with its action ``install``)."""
    service = add_verb(
        sub, "service", help="run the host as a systemd service",
        examples=["rdesk service install --user --print -- --display :0",
                  "sudo rdesk service install -- --virtual 1280x720 --consent ask",
                  "rdesk service install --user     # the config file's [host] settings"],
    )
    actions = service.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install", help="write the host's systemd unit", formatter_class=HelpFormatter,
        description="write rdesk-host.service: `rdesk host` with the flags after --, or "
        "the config file's [host] settings; restarted on failure, hardened, logged to the "
        "journal without secrets")
    install.add_argument("--user", action="store_true",
                         help="a user unit (~/.config/systemd/user), in your session; "
                         "otherwise a system unit (/etc/systemd/system) run as --run-as")
    install.add_argument("--print", action="store_true", help="print the unit, write nothing")
    install.add_argument("--run-as", default=None, metavar="USER",
                         help="the system unit's user (default: $SUDO_USER, else you)")
    install.add_argument("--unit-dir", type=path, default=None, metavar="DIR",
                         help="write the unit here instead")
    install.add_argument("host_args", nargs=argparse.REMAINDER, metavar="-- HOST FLAGS",
                         help="`rdesk host` flags (default: the config file's [host])")
    add_common_options(install, top=False)
    install.set_defaults(handler=_cmd_install)


def _host_settings(config_dir: Path, config: Path | None,
                   host_args: list[str]) -> HostSettings:
    """What the host will run with: its flags parsed as ``rdesk host`` parses them, over the
    config file (a bad flag fails here, not in the journal)."""
    from rdesk.cli.config import apply_config
    from rdesk.cli.host import host_settings
    from rdesk.cli.parser import build_parser

    argv = ["--config-dir", str(config_dir)]
    if config is not None:
        argv += ["--config", str(config)]
    argv += ["host", *host_args]
    parser = build_parser()
    parsed = apply_config(parser, parser.parse_args(argv), argv)
    return host_settings(parsed)


def _refuse_secrets(settings: HostSettings) -> None:
    """No secret may reach the journal: the host prints a one-time password and invite codes."""
    if settings.invites:
        raise UsageError("--invite prints one-time codes, which would go to the journal: "
                         "make invites on a host run in a terminal instead")
    if settings.require_client_cert:
        return
    stored = (settings.config_dir / PASSWORD_FILE).exists()
    if settings.password_file is None and settings.password_hash_file is None and not stored:
        raise UsageError(
            f"the service would print a one-time password to the journal: set one first with "
            f"`rdesk passwd` (a hash in {settings.config_dir}), or give --password-hash-file")


def _warn_private_tmp(settings: HostSettings) -> None:
    """A file the host reads or writes under /tmp is hidden by the system unit's PrivateTmp."""
    for value in dataclasses.asdict(settings).values():
        if isinstance(value, Path) and str(value.absolute()).startswith(("/tmp/", "/var/tmp/")):
            print(f"rdesk: warning: {value} is under /tmp, which the unit's PrivateTmp=yes "
                  "hides from the host; move it", file=sys.stderr)


def _files_of(args: argparse.Namespace, home: Path, run_as: str | None
              ) -> tuple[Path, Path | None]:
    """The host's data directory and config file (``None``: none exists), absolute; under
    sudo for another user, that user's defaults, not root's."""
    from rdesk.cli.config import config_path
    from rdesk.common import dirs

    config_dir, (config, required) = Path(args.config_dir), config_path(args)
    if run_as not in (None, getpass.getuser()) and config_dir == default_config_dir():
        saved = {k: os.environ.pop(k) for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME")
                 if k in os.environ}
        saved_home, os.environ["HOME"] = os.environ.get("HOME"), str(home)
        try:
            config_dir = dirs.data_dir()
            if getattr(args, "config", None) is None:
                config, required = dirs.config_file(), False
        finally:
            os.environ.update(saved)
            if saved_home is not None:
                os.environ["HOME"] = saved_home
    config = config.expanduser().absolute()
    return (config_dir.expanduser().absolute(),
            config if required or config.exists() else None)


def _home_of(user: str) -> Path:
    try:
        return Path(pwd.getpwnam(user).pw_dir)
    except KeyError:
        raise UsageError(f"--run-as {user}: no such user") from None


def _spec(args: argparse.Namespace) -> UnitSpec:
    host_args = list(args.host_args)
    if host_args[:1] == ["--"]:
        host_args = host_args[1:]
    run_as = None if args.user else (args.run_as or os.environ.get("SUDO_USER")
                                     or getpass.getuser())
    home = Path.home() if run_as is None else _home_of(run_as)
    config_dir, config = _files_of(args, home, run_as)
    settings = _host_settings(config_dir, config, host_args)
    _refuse_secrets(settings)
    if not args.user:
        _warn_private_tmp(settings)
    # Both named in the unit: the service's environment (HOME, XDG_*) may differ from yours.
    argv = [sys.executable, "-m", "rdesk", "--config-dir", str(config_dir)]
    if config is not None:
        argv += ["--config", str(config)]
    argv += ["host", *host_args]
    runtime = False
    if settings.consent == "ask" and settings.consent_socket is None and not args.user:
        argv += ["--consent-socket", str(SYSTEM_CONSENT_SOCKET)]
        runtime = True
    writable = [config_dir]
    if settings.transfer != "off":
        writable.append(settings.transfer_dir or home / "rdesk-transfer")
    if settings.audit_log is not None:
        writable.append(settings.audit_log.parent)
    if settings.record_dir is not None:
        writable.append(settings.record_dir)
    environment: list[tuple[str, str]] = []
    if settings.virtual is None:
        for name in ("DISPLAY", "XAUTHORITY"):
            value = os.environ.get(name)
            if value and not (name == "DISPLAY" and settings.display):
                environment.append((name, value))
    return UnitSpec(tuple(argv), args.user, run_as,
                    tuple(p.expanduser().absolute() for p in writable),
                    x11_sockets=settings.virtual is None, environment=tuple(environment),
                    runtime_directory=runtime)


def _unit_dir(user: bool) -> Path:
    if not user:
        return Path("/etc/systemd/system")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def _make_writable(spec: UnitSpec) -> None:
    """Create the folders the host writes, owned by its user: ReadWritePaths= opens only
    folders that exist, and under ProtectHome=read-only the host could not create them."""
    owner = None if spec.run_as in (None, getpass.getuser()) else pwd.getpwnam(spec.run_as)
    for folder in spec.writable:
        if folder.exists():
            continue
        folder.mkdir(mode=0o700, parents=True)
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)


def _cmd_install(args: argparse.Namespace) -> int:
    spec = _spec(args)
    text = render_unit(spec)
    if args.print:
        print(text, end="")
        return 0
    folder = args.unit_dir or _unit_dir(args.user)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / UNIT_NAME, text.encode(), 0o644)
        _make_writable(spec)
    except OSError as exc:
        raise UsageError(f"cannot write {folder / UNIT_NAME}: {exc.strerror}") from None
    ctl = "systemctl --user" if args.user else "systemctl"
    print(f"rdesk: wrote {folder / UNIT_NAME}")
    print(f"  start it:  {ctl} daemon-reload && {ctl} enable --now rdesk-host")
    print(f"  its log:   journalctl {'--user ' if args.user else ''}-t rdesk-host -f")
    if spec.runtime_directory:
        print(f"  consent:   rdesk consent --socket {SYSTEM_CONSENT_SOCKET}   (as {spec.run_as})")
    return 0
