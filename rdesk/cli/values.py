"""Parsers of option values (``type=`` of argparse arguments): sizes, ports, origins, rates.

Each takes the text as typed and returns the value, or raises
:class:`argparse.ArgumentTypeError` whose message argparse prints as the one-line usage error.
"""

from __future__ import annotations

import argparse
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

__all__ = ["ALL_MONITORS", "bandwidth", "invite", "monitor", "origin", "path", "port", "ranged",
           "size", "sized"]

#: What ``monitor("all")`` returns: the whole screen (the wire's ``-1``).
ALL_MONITORS = -1


def path(text: str) -> Path:
    """A file or folder; a leading ``~`` or ``~user`` is expanded as a shell would.

    The expansion is done here because a shell leaves ``~`` alone inside quotes
    (``OPTS="--password-file ~/.rdesk-pass"``) and in ``--opt=~/x``.
    """
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text).expanduser()


def size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT``, each side 32..16384 pixels."""
    return sized(32, 16384)(text)


def sized(low: int, high: int) -> Callable[[str], tuple[int, int]]:
    """A parser of ``WIDTHxHEIGHT``, each side ``low``..``high`` pixels."""

    def parse(text: str) -> tuple[int, int]:
        match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", text)
        if not match:
            raise argparse.ArgumentTypeError(
                f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}"
            )
        width, height = int(match[1]), int(match[2])
        if not (low <= width <= high and low <= height <= high):
            raise argparse.ArgumentTypeError(
                f"each side must be between {low} and {high} pixels"
            )
        return width, height

    return parse


def invite(text: str) -> tuple[str, float]:
    """``ROLE[:MINUTES]``: ``control`` or ``view``, for MINUTES (30; 7 days at most)."""
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


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: any free one)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {number}")
    return number


def origin(text: str) -> str:
    """An origin as browsers send it: ``https://NAME[:PORT]``, no path."""
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"not an origin (https://NAME[:PORT]): {text!r}")
    return f"{parts.scheme}://{parts.netloc}"


def bandwidth(text: str) -> int:
    """Bits per second: ``512k``, ``10M``, ``1.5G`` or a plain number."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)(?:bit/s|bps|b)?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected bits/s such as 512k or 10M, got {text!r}")
    factor = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match[2].lower()]
    value = int(float(match[1]) * factor)
    if not 8_000 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError("bandwidth must be between 8k and 4G bits/s")
    return value


def ranged(lo: int, hi: int) -> Callable[[str], int]:
    """A parser of whole numbers from ``lo`` to ``hi`` inclusive."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo}..{hi}, got {value}")
        return value

    return parse


def monitor(text: str) -> int:
    """A RandR monitor number 0..63, or ``all`` (:data:`ALL_MONITORS`): the whole screen."""
    if text.strip().lower() == "all":
        return ALL_MONITORS
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a monitor number or 'all'") from None
    if not 0 <= number < 64:
        raise argparse.ArgumentTypeError("a monitor number in 0..63")
    return number
