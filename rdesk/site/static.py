"""The browser page, as the host serves it on its own TLS port and a relay on its own, and the
websocket ``Origin`` check both apply.

Everything except the websocket endpoint is a small, fixed set of static files shipped inside
the package (``rdesk/web/`` and its folders ``core/`` and ``app/``), read once at start: no
directory listing, no path from the request ever reaches the file system (a request path is
only ever a key into that fixed set). Every response carries a strict
``Content-Security-Policy`` (the page may load only its own scripts and styles and talk only to
its own origin), ``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff`` and
``Referrer-Policy: no-referrer``.

The websocket endpoint refuses a browser page from any other site (cross-site WebSocket
hijacking): a request that carries ``Origin`` must come from the host's own origin,
``https://<Host header>``, or from an origin the host was explicitly told to allow. A request
without ``Origin`` is not a browser page (the CLI, the desktop viewer) and is let through —
authentication is what protects the endpoint; the Origin check stops other sites from using a
visitor's browser as a viewer.
"""

from __future__ import annotations

import email.utils
import http
import importlib.resources
import importlib.resources.abc
from collections.abc import Iterable, Mapping

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CONTENT_TYPES",
    "StaticSite",
    "forbidden",
    "origin_allowed",
]

#: The page's Content-Security-Policy. ``connect-src 'self'`` covers ``wss://`` to the same
#: host and port (CSP Level 3, "match-self"; Chromium follows it — tests/e2e/test_browser.py
#: connects under this very policy).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)

#: Content types of the files the page is made of, by suffix.
CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

_SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


#: How many folders deep the page's files may lie (``core/x.js`` is one): bounds the walk.
_MAX_FOLDER_DEPTH = 2


def _servable(name: str) -> bool:
    """A file or folder name the site may serve: plain, never hidden, never ``__pycache__``."""
    return (
        bool(name)
        and not name.startswith((".", "_"))
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    )


def _load_files(
    root: importlib.resources.abc.Traversable | None = None,
) -> dict[str, tuple[bytes, str]]:
    """Read every servable file of ``root`` (``rdesk/web``) and its folders once.

    Returns ``"/name"`` or ``"/folder/name"`` → (body, content type). Only files whose suffix
    is in :data:`CONTENT_TYPES` are taken; the walk is the package's own tree, read at start,
    so nothing a request says ever reaches the file system.
    """
    files: dict[str, tuple[bytes, str]] = {}

    def walk(folder: importlib.resources.abc.Traversable, prefix: str, depth: int) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            name = entry.name
            if not _servable(name):
                continue
            if entry.is_dir():
                if depth < _MAX_FOLDER_DEPTH:
                    walk(entry, f"{prefix}{name}/", depth + 1)
                continue
            suffix = name[name.rfind(".") :] if "." in name else ""
            if entry.is_file() and suffix in CONTENT_TYPES:
                files[prefix + name] = (entry.read_bytes(), CONTENT_TYPES[suffix])

    walk(root if root is not None else importlib.resources.files("rdesk") / "web", "/", 0)
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


class StaticSite:
    """Answers the plain HTTP requests of the browser page (GET only, fixed file set)."""

    def __init__(self, files: Mapping[str, tuple[bytes, str]] | None = None) -> None:
        self.files = dict(files) if files is not None else _load_files()

    def respond(self, request: Request) -> Response:
        """The response to a non-websocket request: a page file, 404 or 405."""
        path = request.path.split("?", 1)[0]
        method = getattr(request, "method", "GET")
        if method != "GET":
            response = _response(
                http.HTTPStatus.METHOD_NOT_ALLOWED, b"rdesk: only GET\n", "text/plain"
            )
            response.headers["Allow"] = "GET"
            return response
        found = self.files.get(path)
        if found is None:
            return _response(http.HTTPStatus.NOT_FOUND, b"rdesk: no such page\n", "text/plain")
        body, content_type = found
        return _response(http.HTTPStatus.OK, body, content_type)


def forbidden(text: str = "rdesk: origin not allowed\n") -> Response:
    """A 403 answer to a websocket request refused before it opens."""
    return _response(http.HTTPStatus.FORBIDDEN, text.encode(), "text/plain")


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    if content_type == "text/plain":
        content_type = "text/plain; charset=utf-8"
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            *_SECURITY_HEADERS,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _normalize(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_allowed(headers: Headers, allowed: Iterable[str] = ()) -> bool:
    """Whether a websocket request may open, judging by its ``Origin`` header.

    - no ``Origin``: not a browser page (CLI, desktop viewer): allowed;
    - ``Origin`` equal to ``https://`` + the request's ``Host`` header: the page this host
      served itself: allowed;
    - ``Origin`` in ``allowed`` (the host's ``--allow-origin``): allowed;
    - anything else, including several ``Origin`` headers or ``null``: refused.
    """
    origins = headers.get_all("Origin")
    if not origins:
        return True
    if len(origins) != 1:
        return False
    origin = _normalize(origins[0])
    hosts = headers.get_all("Host")
    if len(hosts) == 1 and hosts[0].strip():
        own = _normalize("https://" + hosts[0])
        # A browser leaves the default port out of Origin, a client may put it in Host.
        own = own.removesuffix(":443")
        if origin == own:
            return True
    return origin in {_normalize(o) for o in allowed}
