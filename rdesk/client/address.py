"""Where a host listens: ``wss://HOST[:PORT][/PATH]`` parsed into a :class:`HostAddress`."""

from __future__ import annotations

import dataclasses
import urllib.parse

from rdesk.client.errors import ConnectError

__all__ = ["DEFAULT_PORT", "WS_PATH", "HostAddress", "parse_url"]

DEFAULT_PORT = 7900
WS_PATH = "/rdesk"


@dataclasses.dataclass(frozen=True)
class HostAddress:
    """Where a host listens: from ``wss://HOST[:PORT][/PATH]``."""

    host: str
    port: int
    path: str = WS_PATH

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"wss://{host}:{self.port}{self.path}"

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_url(url: str) -> HostAddress:
    """Parse a host URL; ``HOST[:PORT]`` alone means ``wss://HOST:PORT``.

    Raises :class:`ConnectError` for anything but ``wss`` (rdesk always uses TLS).
    """
    if "://" not in url:
        url = "wss://" + url
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConnectError(f"invalid host URL {url!r}: {exc}") from None
    if parts.scheme not in ("wss", "https"):
        raise ConnectError(f"rdesk only connects over TLS: use wss://, not {parts.scheme}://")
    if not parts.hostname:
        raise ConnectError(f"invalid host URL {url!r}: no host name")
    path = parts.path if parts.path not in ("", "/") else WS_PATH
    return HostAddress(parts.hostname, port, path)
