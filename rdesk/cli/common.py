"""What every verb of the ``rdesk`` command shares: the common options, the one-line user
error, and the check that a host-side verb has the host extra installed.

The common options (``--config-dir``, ``-v``/``--verbose``, ``--version``) are accepted before
the verb and after it (``rdesk --config-dir X host`` and ``rdesk host --config-dir X``). The
top-level parser owns their defaults; each verb's parser declares them again with the default
:data:`argparse.SUPPRESS`, so a verb's parser sets them only when they are given after the
verb (and then the later value wins), never resetting one given before it.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from rdesk import __version__

__all__ = [
    "HOST_ONLY_MODULES",
    "UsageError",
    "add_common_options",
    "add_verb",
    "one_line",
    "require_host_extra",
]

#: Top-level modules of the ``host`` extra (pyproject.toml): a viewer-only install lacks them.
HOST_ONLY_MODULES = ("mss", "Xlib", "pynput", "numpy", "simplejpeg")


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line."""


def one_line(exc: BaseException) -> str:
    """``exc`` as the one line after ``rdesk: error:`` (whitespace runs folded)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not str(exc):
        text = "timed out"
    return " ".join(text.split())


def add_common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Declare the options of every verb on ``parser``.

    ``top``: the top-level parser, which sets the defaults; otherwise a verb's parser, which
    leaves an option it was not given untouched (see the module docstring).
    """
    group = parser if top else parser.add_argument_group("options of every verb")
    unset = argparse.SUPPRESS
    group.add_argument("--version", action="version", version=f"rdesk {__version__}")
    group.add_argument(
        "--config-dir",
        type=Path,
        default=None if top else unset,
        help="certificates, password and known hosts (default ~/.config/rdesk)",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=False if top else unset,
        help="log what happens",
    )


def add_verb(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse.ArgumentParser:
    """A verb's parser, with the common options already on it."""
    parser = sub.add_parser(name, help=help)
    add_common_options(parser, top=False)
    return parser


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the name: as good as absent
        return False


def require_host_extra(verb: str) -> None:
    """Raise :class:`UsageError` (one line) if a module of :data:`HOST_ONLY_MODULES` is missing.

    Checked without importing them: pynput, for one, connects to ``$DISPLAY`` on import.
    """
    if not all(_present(module) for module in HOST_ONLY_MODULES):
        raise UsageError(f"rdesk {verb} needs the host extra: pip install 'rdesk[host]'")
