"""What ``rdesk host`` prints when it starts: where to connect, the fingerprint, how to log in."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

from rdesk.host.relayed import RelayPresence
from rdesk.host.screen.source import ScreenSource
from rdesk.host.security.tls import certificate_fingerprint, host_key_fingerprint
from rdesk.host.serve.server import HostServer
from rdesk.host.settings import HostSettings
from rdesk.protocol.fingerprint import fingerprint_hex

__all__ = ["print_banner", "print_relay_banner", "urls"]


def urls(bind: str, port: int) -> list[str]:
    """The addresses viewers may connect to: ``bind``'s, or every address of this machine."""
    if bind not in ("0.0.0.0", "::", ""):
        host = f"[{bind}]" if ":" in bind else bind
        return [f"wss://{host}:{port}"]
    names = [socket.gethostname()]
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = str(info[4][0])
            if address not in names and not address.startswith("127."):
                names.append(address)
    names.append("127.0.0.1")
    return [f"wss://{name}:{port}" for name in names]


def print_banner(
    out: Callable[[str], None],
    display: str,
    source: ScreenSource,
    capture: str,
    server: HostServer,
    cert: Path,
    how: str,
    settings: HostSettings,
) -> None:
    """The start banner: the display shared, the capture, where to connect, the key's
    fingerprint and ``how`` to log in (tests/hostproc.py waits for its last line)."""
    out(f"rdesk host: sharing display {display} ({source.width}x{source.height})")
    out(f"  capture:     {capture}")
    if settings.listen:
        for url in urls(settings.bind, server.port):
            out(f"  connect:     {url}    (browser: {url.replace('wss://', 'https://', 1)}/)")
    else:
        out("  connect:     through the relay only (--no-listen)")
    # Viewers pin the key (its SPKI): a certificate re-issued for the same key keeps the pins.
    out(f"  fingerprint: {host_key_fingerprint(cert)}")
    # Browsers cannot pin a key; they show the certificate's SHA-256 as hex (docs/browser.md).
    out(f"  browser:     SHA-256 {fingerprint_hex(certificate_fingerprint(cert))}")
    out(f"  {how}")
    out("  e.g.         rdesk snapshot URL -o shot.png   |   Ctrl+C stops the host")


def print_relay_banner(out: Callable[[str], None], presence: RelayPresence) -> None:
    """The banner's lines for a host registered on a relay: the relay and the host's ID."""
    out(f"  relay:       {presence.link.url}")
    out(f"  ID:          {presence.host_id}    (viewers type it to reach this host)")
    out(f"  e.g.         rdesk snapshot {presence.host_id} --relay {presence.link.url} "
        "-o shot.png")
