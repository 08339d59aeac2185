"""What every verb of the ``rdesk`` command shares: the common options, the one-line user
error, the help layout, deprecated option spellings, and the check that a host-side verb has
the host extra installed.

The common options (``--config-dir``, ``--config``, ``-v``/``--verbose``, ``--version``) are
accepted before the verb and after it (``rdesk --config-dir X host`` and ``rdesk host
--config-dir X``). The top-level parser owns their defaults; each verb's parser declares them
again with the default :data:`argparse.SUPPRESS`, so a verb's parser sets them only when they
are given after the verb (and then the later value wins), never resetting one given before it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

from rdesk import __version__
from rdesk.cli.values import path

__all__ = [
    "HOST_ONLY_MODULES",
    "DeprecatedAlias",
    "HelpFormatter",
    "UsageError",
    "add_common_options",
    "add_deprecated",
    "add_verb",
    "one_line",
    "require_host_extra",
]

#: Top-level modules of the ``host`` extra (pyproject.toml): a viewer-only install lacks them.
HOST_ONLY_MODULES = ("mss", "Xlib", "pynput", "numpy", "simplejpeg")


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line.

    ``code`` is the exit status (:mod:`rdesk.cli.exits`), 1 unless a more precise one applies.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def one_line(exc: BaseException) -> str:
    """``exc`` as the one line after ``rdesk: error:`` (whitespace runs folded)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not str(exc):
        text = "timed out"
    return " ".join(text.split())


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` with every meaningful default shown as ``(default: …)``.

    Unlike argparse's ``ArgumentDefaultsHelpFormatter`` it leaves out defaults that say
    nothing (``None``, ``False``, an empty list) and keeps the epilog's examples as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "(default" in text
            or default is argparse.SUPPRESS
            or default is None
            or default is False
            or (isinstance(default, (list, tuple)) and not default)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


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
        type=path,
        default=None if top else unset,
        help="certificates, passwords and known hosts, and config.toml (default: the "
        "platform's data directory, e.g. ~/.local/share/rdesk, or ~/.config/rdesk if an "
        "earlier rdesk wrote there)",
    )
    group.add_argument(
        "--config",
        type=path,
        default=None if top else unset,
        metavar="FILE",
        help="settings and saved hosts, TOML (default: CONFIG_DIR/config.toml with "
        "--config-dir, else the platform's, e.g. ~/.config/rdesk/config.toml)",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=False if top else unset,
        help="log what happens",
    )


def add_verb(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    examples: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """A verb's parser, with the common options already on it and ``examples`` in its help."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    parser = sub.add_parser(
        name, help=help, description=help, epilog=epilog, formatter_class=HelpFormatter
    )
    add_common_options(parser, top=False)
    return parser


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: does what the new one does, with one line on stderr.

    ``quiet`` (set while the same command line is parsed a second time, with the config
    file's defaults) keeps the line from being printed twice.
    """

    quiet = False

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if not DeprecatedAlias.quiet:
            print(
                f"rdesk: warning: {option_string} is deprecated; use {self.new}",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, values)


def add_deprecated(
    parser: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs: Any
) -> None:
    """Accept ``old`` as a hidden, deprecated spelling of the option ``new`` (same ``dest``)."""
    parser.add_argument(
        old, dest=dest, action=DeprecatedAlias, new=new, help=argparse.SUPPRESS,
        default=argparse.SUPPRESS, **kwargs,
    )


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
