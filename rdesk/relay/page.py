"""The browser viewer's page on the relay, and which websocket requests a browser may open.

``https://RELAY/`` serves the same static page as a host (:class:`rdesk.site.static.StaticSite`,
same Content-Security-Policy: ``connect-src 'self'`` then allows ``wss://RELAY/connect``). The
page finds out it was served by a relay from ``/relay.json``, answered here only, and asks for
an ID instead of connecting to its own origin.

``Origin`` rules: ``/connect`` takes a browser page only from the relay's own origin (the page
it served) or an origin the operator allowed, as the host's endpoint does; ``/host`` and
``/data`` are for rdesk hosts, never for a page, so any ``Origin`` there is refused.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from rdesk.relay.directory import Directory
from rdesk.site.static import StaticSite, forbidden, origin_allowed

__all__ = ["RELAY_INFO_PATH", "PageDecision", "judge", "probe"]

#: What the page asks to learn that it is on a relay (and which tunnel version it speaks).
RELAY_INFO_PATH = "/relay.json"
_RELAY_INFO = json.dumps({"relay": True, "tunnel": 1}).encode()
_WEBSOCKET_PATHS = frozenset({"/host", "/data", "/connect"})
_HOSTS_ONLY = frozenset({"/host", "/data"})


@functools.cache
def _site() -> StaticSite:
    """The page's files, read once per process on first use (not at import: tests import)."""
    site = StaticSite()
    site.files[RELAY_INFO_PATH] = (_RELAY_INFO, "application/json")
    return site


PageDecision = Response | None


def judge(request: Request, allowed_origins: Iterable[str] = ()) -> PageDecision:
    """The answer to a request that is not a health check: ``None`` to open the websocket,
    else the response (a page file, 404, 405, or 403 for a refused ``Origin``)."""
    path = request.path.split("?", 1)[0]
    if path in _WEBSOCKET_PATHS:
        if path in _HOSTS_ONLY and request.headers.get_all("Origin"):
            return forbidden("rdesk relay: browser pages may not open this endpoint\n")
        if not origin_allowed(request.headers, allowed_origins):
            return forbidden()
        return None
    return _site().respond(request)


def _text_response(ws: ServerConnection, status: int, text: str) -> Response:
    response = ws.respond(status, text + "\n")
    response.headers["Cache-Control"] = "no-store"
    return response


async def probe(ws: ServerConnection, request: Request, draining: bool,
                directory: Directory) -> Response | None:
    """The answer to a balancer's probe: ``/healthz`` while the process runs, ``/readyz``
    while it accepts work (not draining, its directory answering); ``None`` for any other
    path."""
    path = request.path.split("?", 1)[0]
    if path == "/healthz":
        return _text_response(ws, 200, "ok")
    if path != "/readyz":
        return None
    if draining:
        return _text_response(ws, 503, "draining")
    if not await directory.ready():
        return _text_response(ws, 503, "directory unavailable")
    return _text_response(ws, 200, "ready")
