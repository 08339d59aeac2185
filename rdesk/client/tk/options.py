"""What ``rdesk connect`` asks of the desktop viewer (:class:`ViewerOptions`).

Its own module because both sides read it — the window (:mod:`rdesk.client.tk.window`,
which re-exports it) and the network worker (:mod:`rdesk.client.tk.worker`) — and it needs
no toolkit.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from pathlib import Path

from rdesk.client.framebuffer import DEFAULT_MAX_SCREEN_PIXELS
from rdesk.client.tk.viewport import FIT, Mode

__all__ = ["ViewerOptions"]


@dataclasses.dataclass(frozen=True)
class ViewerOptions:
    """What ``rdesk connect`` was asked to do."""

    url: str
    known_hosts: Path
    #: Where the password comes from (file, environment); ``None``: ask with a dialog.
    password: Callable[[], str] | None = None
    fingerprint: str | None = None
    accept_new: bool = False
    view_only: bool = False
    fullscreen: bool = False
    scale: Mode = FIT
    name: str = "rdesk viewer"
    timeout: float = 15.0
    #: TLS context with a client certificate (``--cert/--key``) or a CA file (``--ca-file``,
    #: which then trusts the host instead of a pin); ``None``: the default one.
    ssl_context: ssl.SSLContext | None = None
    #: The host's monitor to share once connected (``--monitor``; -1 the whole screen).
    monitor: int | None = None
    #: Declare the H.264 decoder (when PyAV imports) so moving regions may come as video.
    video: bool = True
    #: Resize the host's virtual desktop to the window (``--resize-desktop``; F8 menu).
    resize_desktop: bool = False
    #: The largest host screen accepted, in pixels (``--max-screen``).
    max_pixels: int = DEFAULT_MAX_SCREEN_PIXELS
