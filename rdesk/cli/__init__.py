"""The ``rdesk`` command: the host, the viewers and the scripting verbs.

Every failure a user can cause ends as one line ``rdesk: error: ...`` and an exit status that
says what went wrong (:mod:`rdesk.cli.exits`: 2 for a bad command line, as argparse does, 3..7
for wrong credentials, host keys, an unreachable host or a refusal, 1 for anything else);
tracebacks are for bugs only.

The verbs live in :mod:`rdesk.cli.host` (``host``, ``passwd``), :mod:`rdesk.cli.view`
(``connect``, ``snapshot``, ``watch``), :mod:`rdesk.cli.input` (``type``, ``key``, ``move``,
``click``, ``scroll``) and :mod:`rdesk.cli.security` (``certs``, ``play``); the parser that
gathers them in :mod:`rdesk.cli.parser`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from rdesk.cli import exits
from rdesk.cli.common import UsageError, one_line
from rdesk.cli.parser import build_parser
from rdesk.client.connection import ConnectError
from rdesk.client.known_hosts import HostKeyError, UnknownHostKey
from rdesk.client.tls import ClientTLSError
from rdesk.common import dirs
from rdesk.host.settings import default_config_dir

__all__ = ["build_parser", "main"]

#: Exceptions whose message is meant for the user as it is.
_USER_ERRORS: tuple[type[BaseException], ...] = (
    ConnectError,
    HostKeyError,
    ClientTLSError,
    TimeoutError,
    UsageError,
    UnknownHostKey,
)

#: More of them, as (module, class): those of the host's and the recordings' modules. They are
#: looked up only in modules already imported (an exception class whose module was never
#: imported cannot have been raised), so that a viewer's error never imports the host's code.
_MODULE_ERRORS = (
    ("rdesk.host.app", "HostError"),
    ("rdesk.host.screen.capture", "CaptureError"),
    ("rdesk.host.screen.virtual", "VirtualDisplayError"),
    ("rdesk.host.security.passwords", "PasswordError"),
    ("rdesk.host.security.tls", "TLSSetupError"),
    ("rdesk.host.security.ca", "CAError"),
    ("rdesk.recording.format", "RecordingError"),
)


def _user_errors() -> tuple[type[BaseException], ...]:
    loaded = [
        getattr(sys.modules[module], name)
        for module, name in _MODULE_ERRORS
        if module in sys.modules
    ]
    return (*_USER_ERRORS, *loaded)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rdesk`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="rdesk: %(levelname)s: %(message)s",
    )
    if args.config_dir is None:
        # No --config-dir: the platform's directories (rdesk/common/dirs.py).
        args.config_dir = default_config_dir()
        args.config_default = dirs.config_file()
    try:
        from rdesk.cli.config import apply_config

        args = apply_config(parser, args, argv)
        return int(args.handler(args))
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"rdesk: error: {one_line(exc)}", file=sys.stderr)
        return exits.exit_code(exc)
