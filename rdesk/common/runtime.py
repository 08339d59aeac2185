"""The user's runtime directory and the consent socket's place in it (host and ``rdesk
consent`` both need them; standard library only, so a viewer-only install has them)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONSENT_MAX_LINE", "consent_socket_path", "runtime_dir"]

#: Longest line either way on the consent socket, in bytes (rdesk/host/serve/consentsock.py).
CONSENT_MAX_LINE = 4096


def runtime_dir() -> Path | None:
    """The user's runtime directory: ``$XDG_RUNTIME_DIR`` when set, else ``/run/user/UID``;
    ``None`` when it does not exist (a set variable is never second-guessed)."""
    env = os.environ.get("XDG_RUNTIME_DIR")
    candidate = Path(env) if env else Path(f"/run/user/{os.getuid()}")
    return candidate if candidate.is_dir() else None


def consent_socket_path() -> Path | None:
    """Where a ``--consent ask`` host listens and ``rdesk consent`` connects by default:
    ``RUNTIME_DIR/rdesk/consent.sock`` (``None``: no runtime directory)."""
    base = runtime_dir()
    return None if base is None else base / "rdesk" / "consent.sock"
