"""How the browser page is built and served: the fixed file set with its folders
(``rdesk/site/static.py``), the module graph of ``rdesk/web/``, and a DOM-free ``core/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from rdesk.site.static import CONTENT_SECURITY_POLICY, CONTENT_TYPES, StaticSite, _load_files

WEB = Path(__file__).resolve().parents[2] / "rdesk" / "web"
CORE = WEB / "core"
APP = WEB / "app"

#: What a core module may not touch: the page's globals and DOM lookups (a drawing context
#: is passed in instead).
DOM_WORDS = re.compile(
    r"\b(document|window|navigator|location|localStorage|sessionStorage|getElementById"
    r"|querySelector(All)?|HTMLElement|HTMLCanvasElement|addEventListener|innerHTML"
    r"|alert|requestAnimationFrame)\b"
)
IMPORT = re.compile(r"""(?:\bfrom|\bimport)\s*\(?\s*["']([^"']+)["']""")


def _get(site: StaticSite, path: str) -> tuple[int, bytes, Headers]:
    response = site.respond(Request(path, Headers([("Host", "127.0.0.1")])))
    return response.status_code, bytes(response.body), response.headers


def _page_files() -> dict[str, Path]:
    return {
        "/" + p.relative_to(WEB).as_posix(): p
        for p in WEB.rglob("*")
        if p.is_file() and p.suffix in CONTENT_TYPES and "__pycache__" not in p.parts
    }


# --- the static site --------------------------------------------------------------------------


def test_every_page_file_is_served_from_its_folder_with_the_security_headers() -> None:
    site = StaticSite()
    files = _page_files()
    assert {"/index.html", "/style.css", "/app/main.js", "/core/protocol.js"} <= set(files)
    assert set(site.files) == set(files) | {"/"}
    for path, source in files.items():
        status, body, headers = _get(site, path)
        assert status == 200, path
        assert body == source.read_bytes(), path
        assert headers["Content-Type"] == CONTENT_TYPES[source.suffix]
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
    assert _get(site, "/")[1] == (WEB / "index.html").read_bytes()
    assert _get(site, "/core/protocol.js?v=2")[0] == 200  # a query string is not part of the path


@pytest.mark.parametrize(
    "path",
    [
        "/core",
        "/core/",
        "/app/",
        "/core/../index.html",
        "/core/./protocol.js",
        "/core//protocol.js",
        "//core/protocol.js",
        "/app/../core/protocol.js",
        "/core/protocol.js/",
        "/CORE/protocol.js",
        "/web/core/protocol.js",
        "/core/%2e%2e/index.html",
        "/core/protocol.js%00",
        "/core\\protocol.js",
        "/../pyproject.toml",
        "/__init__.py",
        "/core/nope.js",
        "core/protocol.js",
    ],
)
def test_anything_but_a_listed_file_is_404(path: str) -> None:
    status, body, headers = _get(StaticSite(), path)
    assert status == 404
    assert body == b"rdesk: no such page\n"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_the_walk_takes_plain_page_files_two_folders_deep_and_nothing_else(
    tmp_path: Path,
) -> None:
    tree = {
        "index.html": b"<p>hi",
        "style.css": b"p{}",
        "core/a.js": b"export const a = 1;",
        "core/deep/b.js": b"export const b = 2;",
        "x/y/z/too-deep.js": b"1",
        ".hidden.js": b"1",
        "core/.swap.js": b"1",
        "__pycache__/c.js": b"1",
        "_private/d.js": b"1",
        "notes.txt": b"1",
        "data.json": b"{}",
        "bad name.js": b"1",
        "caf\u00e9.js": b"1",
        "Makefile": b"1",
    }
    for name, data in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    files = _load_files(tmp_path)
    assert sorted(files) == ["/", "/core/a.js", "/core/deep/b.js", "/index.html", "/style.css"]
    assert files["/core/deep/b.js"] == (b"export const b = 2;", "text/javascript; charset=utf-8")
    assert files["/"] == files["/index.html"]
    # Read once: a change on disk afterwards is not served.
    site = StaticSite(files)
    (tmp_path / "core" / "a.js").write_bytes(b"changed")
    assert _get(site, "/core/a.js")[1] == b"export const a = 1;"


# --- the page's modules -----------------------------------------------------------------------


def _imports(path: Path) -> list[str]:
    return IMPORT.findall(path.read_text(encoding="utf-8"))


def _resolve(importer: str, spec: str) -> str:
    """The URL path an import specifier of the module at URL path ``importer`` loads."""
    assert spec.startswith(("./", "../")), f"{importer}: bare or absolute import {spec!r}"
    parts = importer.split("/")[:-1]
    for part in spec.split("/"):
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def test_core_has_no_dom_access() -> None:
    modules = sorted(CORE.glob("*.js"))
    assert {p.name for p in modules} >= {
        "protocol.js",
        "connection.js",
        "framebuffer.js",
        "reconnect.js",
    }
    for path in modules:
        text = path.read_text(encoding="utf-8")
        found = sorted({m.group(0) for m in DOM_WORDS.finditer(text)})
        assert not found, f"{path.name} touches the page: {found}"


def test_the_dom_check_would_catch_a_lookup() -> None:
    for line in (
        'const c = document.getElementById("screen");',
        "window.addEventListener(x)",
        "location.host",
        "el.innerHTML = s",
    ):
        assert DOM_WORDS.search(line), line
    assert not DOM_WORDS.search("this.display.resize(w, h); ctx.canvas.width = w;")


def test_core_imports_only_core_and_app_builds_on_it() -> None:
    for path in CORE.glob("*.js"):
        for spec in _imports(path):
            assert spec.startswith("./") and "/" not in spec[2:], f"core/{path.name}: {spec}"
    for path in APP.glob("*.js"):
        for spec in _imports(path):
            assert spec.startswith(("./", "../core/")), f"app/{path.name}: {spec}"


def test_index_loads_app_main_and_every_import_is_a_served_file() -> None:
    site = StaticSite()
    html = (WEB / "index.html").read_text(encoding="utf-8")
    # Relative to the page's own path, so the page also works under a gateway's path prefix.
    found = re.findall(r'<script type="module" src="([^"]+)"></script>', html)
    assert found == ["app/main.js"]
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)">', html) == ["style.css"]
    scripts = ["/" + src for src in found]
    seen: set[str] = set()
    todo = list(scripts)
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        assert url in site.files, f"{url} is imported but not served"
        todo += [_resolve(url, spec) for spec in _imports(WEB / url.lstrip("/"))]
    # Every module of the page is reachable from app/main.js: nothing dead is shipped.
    shipped = {p for p in site.files if p.endswith(".js")}
    assert seen == shipped
