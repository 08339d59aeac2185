"""The ``rdesk`` command line: the top-level parser and every verb's, gathered from the verb
modules (``host``, ``view``, ``input``, ``security``).

Building the parser imports no host-only library, so ``rdesk --help`` and the viewer verbs
work on a viewer-only install.
"""

from __future__ import annotations

import argparse

from rdesk.cli import (
    clip,
    completion,
    config,
    consent,
    do,
    host,
    input,
    relay,
    relayd,
    resize,
    security,
    service,
    transfer,
    view,
)
from rdesk.cli.common import add_common_options

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar (also used by the docs).

    Each verb's parser sets ``handler``: the function that runs it, given the parsed
    arguments, returning the exit status.
    """
    parser = argparse.ArgumentParser(
        prog="rdesk", description="Secure remote desktop over TLS websockets."
    )
    add_common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    host.add_parsers(sub)
    view.add_parsers(sub)
    input.add_parsers(sub)
    transfer.add_parsers(sub)
    clip.add_parsers(sub)
    resize.add_parsers(sub)
    do.add_parsers(sub)
    security.add_parsers(sub)
    service.add_parsers(sub)
    config.add_parsers(sub)
    consent.add_parsers(sub)
    completion.add_parsers(sub)
    view.add_connect_parser(sub)
    relayd.add_parsers(sub)
    relay.wrap_viewer_handlers(sub)
    _common_options_everywhere(parser)
    return parser


def _common_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give every nested verb (``clip set``, ``service install``, ``relay token create``…) the
    options of every verb too, so ``--config-dir`` works after the last verb as after the first
    (a verb module that adds its own sub-verbs need not remember to)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                if "--config-dir" not in child._option_string_actions:
                    add_common_options(child, top=False)
                _common_options_everywhere(child)
