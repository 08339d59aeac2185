"""Issue 5 end to end: the browser page the host serves, in Debian's headless Chromium.

Playwright drives /usr/bin/chromium (never a downloaded browser) against a real host on Xvfb
over real TLS; HTTPS errors are ignored for the self-signed test certificate.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import re
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from rdesk.site.static import CONTENT_SECURITY_POLICY
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Painter, Recorder, Xvfb, grab_root, image_diff

CHROMIUM = Path("/usr/bin/chromium")
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "protocol.json"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed"
)

HAVE_INJECTOR = importlib.util.find_spec("rdesk.host.input.inject") is not None
TIMEOUT_MS = 30_000


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


class PageLog:
    """Console messages and page errors, to catch CSP violations and script errors."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def csp_violations(self) -> list[str]:
        return [line for line in self.lines if "Content Security Policy" in line]

    def errors(self) -> list[str]:
        return [line for line in self.lines if line.startswith("pageerror")]


@pytest.fixture
def page_and_log(browser: Any) -> Iterator[tuple[Any, PageLog]]:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 900, "height": 640})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log = PageLog()
    page.on("console", lambda m: log.lines.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.lines.append(f"pageerror: {e}"))
    try:
        yield page, log
    finally:
        context.close()


@pytest.fixture
def page(page_and_log: tuple[Any, PageLog]) -> Any:
    return page_and_log[0]


def _wait_js(page: Any, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll ``expression`` from outside the page until it is truthy.

    (``page.wait_for_function`` evaluates strings inside the page, which the page's CSP
    rightly forbids: no 'unsafe-eval'.)
    """
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {expression}")
        page.wait_for_timeout(100)


def _https(host: RunningHost) -> str:
    return f"https://127.0.0.1:{host.port}/"


def _login(page: Any, host: RunningHost, password: str = PASSWORD) -> None:
    page.goto(_https(host))
    page.fill("#password", password)
    page.click("#connect")


def _wait_active(page: Any) -> None:
    page.wait_for_selector("body[data-state=active]", state="attached")


def _canvas_image(page: Any) -> Image.Image:
    data = page.evaluate(
        """() => {
            const c = document.getElementById("screen");
            const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let s = "";
            for (let i = 0; i < px.length; i += 0x8000) {
                s += String.fromCharCode.apply(null, px.subarray(i, i + 0x8000));
            }
            return [c.width, c.height, btoa(s)];
        }"""
    )
    width, height, b64 = data
    rgba = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(height, width, 4)
    return Image.fromarray(rgba[:, :, :3].copy(), "RGB")


def _wait_canvas_equals(page: Any, display: str, timeout: float = 30) -> None:
    """Wait until the page says it is exact and its canvas equals the X screen."""
    import time

    deadline = time.monotonic() + timeout
    diff: tuple[int, int] = (0, 0)
    while True:
        page.wait_for_selector("body[data-exact=true]", state="attached")
        shot = _canvas_image(page)
        expected = grab_root(display)
        if shot.size == expected.size:
            diff = image_diff(shot, expected)
            if diff[0] == 0:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"canvas differs from the X screen: {diff} (pixels, max delta)")
        page.wait_for_timeout(200)


def _client_point(page: Any, x: int, y: int) -> tuple[float, float]:
    """Where host pixel (x, y) is on the page, under the page's current scaling."""
    point: list[float] = page.evaluate(
        """([x, y]) => {
            const c = document.getElementById("screen");
            const r = c.getBoundingClientRect();
            return [r.left + (x + 0.5) * r.width / c.width,
                    r.top + (y + 0.5) * r.height / c.height];
        }""",
        [x, y],
    )
    return point[0], point[1]


# --- the page and its headers ------------------------------------------------------------------


def test_page_is_served_with_strict_headers(host: RunningHost, page: Any) -> None:
    response = page.goto(_https(host))
    assert response.status == 200
    headers = response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for directive in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'",
                      "base-uri 'none'", "form-action 'none'", "connect-src 'self'"):
        assert directive in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    for path, kind in (("/style.css", "text/css"), ("/app/main.js", "text/javascript"),
                       ("/core/protocol.js", "text/javascript"),
                       ("/core/keys.js", "text/javascript"), ("/index.html", "text/html")):
        r = page.request.get(_https(host) + path.lstrip("/"))
        assert r.status == 200, path
        assert r.headers["content-type"].startswith(kind), (path, r.headers)
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for path in ("nope", "web/app/main.js", "../pyproject.toml", "%2e%2e/cli.py", "favicon.ico",
                 "core/", "app", "core/main.js", "app/protocol.js"):
        assert page.request.get(_https(host) + path).status == 404, path
    # Only GET: other methods are refused (a request body is refused by the HTTP parser).
    assert page.request.fetch(_https(host), method="DELETE").status == 405
    assert page.request.fetch(_https(host), method="POST").status == 405
    # The advice about certificates is on the login page.
    assert "compare the fingerprint your browser shows" in page.inner_text("#login-panel")


# --- logging in and seeing the desktop ---------------------------------------------------------


def test_login_shows_the_desktop_pixel_exact(
    xvfb: Xvfb, host: RunningHost, page_and_log: tuple[Any, PageLog]
) -> None:
    page, log = page_and_log
    with Painter(xvfb.display, seed=7) as painter:
        _login(page, host)
        _wait_active(page)
        assert page.evaluate("document.body.dataset.role") == "control"
        assert page.is_hidden("#view-only")
        assert page.evaluate("[screen.width, screen.height]")  # page alive
        _wait_canvas_equals(page, xvfb.display)
        assert image_diff(_canvas_image(page), painter.expected())[0] == 0
        # A change reaches the canvas, exactly.
        painter.rect(100, 90, 37, 23, "12ab34")
        _wait_canvas_equals(page, xvfb.display)
        painter.image(8)
        _wait_canvas_equals(page, xvfb.display)
    # The overlay shows live numbers.
    _wait_js(page, "document.getElementById('stat-rtt').textContent.endsWith('ms')")
    assert re.search(r"(k|M)bit/s", page.inner_text("#stat-bw"))
    assert not log.csp_violations(), log.lines
    assert not log.errors(), log.lines


def test_wrong_password_shows_a_message_and_no_desktop(
    host: RunningHost, page_and_log: tuple[Any, PageLog]
) -> None:
    page, log = page_and_log
    _login(page, host, "not the password")
    _wait_js(page, "document.getElementById('message').textContent.includes('Wrong password')")
    assert page.evaluate("document.body.dataset.state") == "login"
    assert page.is_hidden("#desktop")
    assert page.evaluate("document.getElementById('screen').width") == 1
    assert host.server.auth_attempts == 1
    assert not host.server.viewers
    assert not log.errors(), log.lines


def test_view_only_is_shown(xvfb: Xvfb, host_factory: Callable[..., RunningHost],
                            page: Any) -> None:
    class ViewOnly:
        def check(self, secret: str) -> str | None:
            return "view" if secret == PASSWORD else None

    host = host_factory(xvfb.display, credentials=ViewOnly())
    _login(page, host)
    _wait_active(page)
    assert page.evaluate("document.body.dataset.role") == "view"
    assert page.is_visible("#view-only")
    assert "VIEW ONLY" in page.inner_text("#view-only")


def test_reconnects_after_a_drop(xvfb: Xvfb, host: RunningHost, page: Any) -> None:
    _login(page, host)
    _wait_active(page)
    first = set(host.server.viewers)
    assert len(first) == 1

    async def drop() -> None:
        # A network drop: abort every TCP connection without any closing handshake.
        server = host.server._server
        assert server is not None
        for connection in list(server.connections):
            connection.transport.abort()

    host.call(drop())
    page.wait_for_selector("body[data-state=reconnecting]", state="attached")
    assert "Reconnecting" in page.inner_text("#banner")
    _wait_active(page)
    _wait_js(page, "!!document.body.dataset.seq")
    assert set(host.server.viewers) and set(host.server.viewers) != first
    assert page.is_hidden("#banner")


# --- input -------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAVE_INJECTOR, reason="needs rdesk.host.input.inject (the input issue)")
def test_typing_and_clicking_reach_an_x_client(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], page: Any
) -> None:
    from rdesk.host.input.inject import PynputInjector

    host = host_factory(xvfb.display, injector=lambda d: PynputInjector(d))
    with Recorder(xvfb.display) as recorder:
        _login(page, host)
        _wait_active(page)
        # The canvas is scaled to fit the window: coordinates must be mapped back.
        scale = page.evaluate(
            "document.getElementById('screen').getBoundingClientRect().width / 640"
        )
        assert abs(scale - 1) > 0.01, scale
        x0, y0, w, h = recorder.geometry
        target = (x0 + w // 2, y0 + h // 3)
        cx, cy = _client_point(page, *target)
        page.mouse.click(cx, cy)
        press = recorder.wait_for(lambda e: e["type"] == "button_press" and e["button"] == 1)
        assert abs(press["x"] - target[0]) <= 1 and abs(press["y"] - target[1]) <= 1, press
        recorder.wait_for(lambda e: e["type"] == "button_release" and e["button"] == 1)
        page.mouse.click(cx, cy, button="right")
        recorder.wait_for(lambda e: e["type"] == "button_press" and e["button"] == 3)
        page.keyboard.type("Hello, rdesk!")
        page.keyboard.press("Enter")
        assert recorder.wait_for_text("Hello, rdesk!\r").endswith("Hello, rdesk!\r")
        page.mouse.wheel(0, 100)
        recorder.wait_for(lambda e: e["type"] == "button_press" and e["button"] == 5)
        recorder.wait_idle()
        assert not recorder.held_keys()


# --- origin check ------------------------------------------------------------------------------


def _client_ssl() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _open(host: RunningHost, origin: str | None) -> str | bytes:
    # The sync client: Playwright's sync API already runs an event loop in this thread.
    with ws_connect(
        f"wss://127.0.0.1:{host.port}/rdesk",
        ssl=_client_ssl(),
        origin=origin,  # type: ignore[arg-type]
        open_timeout=20,
    ) as ws:
        return ws.recv(timeout=20)


def test_foreign_origin_is_refused_with_403(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    host = host_factory(xvfb.display)
    with pytest.raises(InvalidStatus) as info:
        _open(host, "https://evil.example")
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        _open(host, "null")
    with pytest.raises(InvalidStatus):  # same host, other port: another origin
        _open(host, f"https://127.0.0.1:{host.port + 1}")
    # The host's own page, and viewers that send no Origin (the CLI), are let in.
    hello = json.loads(_open(host, f"https://127.0.0.1:{host.port}"))
    assert hello["t"] == "hello"
    assert json.loads(_open(host, None))["t"] == "hello"
    # An explicitly allowed origin is let in.
    other = host_factory(xvfb.display, allowed_origins=("https://evil.example",))
    assert json.loads(_open(other, "https://evil.example"))["t"] == "hello"


def test_foreign_page_cannot_open_the_websocket(host: RunningHost, page: Any) -> None:
    page.route(
        "https://evil.example/",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<p>evil</p>"),
    )
    page.goto("https://evil.example/")
    result = page.evaluate(
        """(url) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve("open");
            ws.onmessage = () => resolve("message");
            ws.onclose = (e) => resolve("closed " + e.code);
        })""",
        f"wss://127.0.0.1:{host.port}/rdesk",
    )
    assert result == "closed 1006", result


# --- the shared codec vectors in the browser ---------------------------------------------------

_RUN_VECTORS = """
async (vectors) => {
  const P = await import("/core/protocol.js");
  const b64bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const bytesB64 = (u) => btoa(String.fromCharCode(...u));
  const same = (a, b) => {
    if (a === b) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => same(a[k], b[k]));
  };
  const nonce = btoa(String.fromCharCode(...Array.from({length: 16}, (_, i) => i)));
  const decode = (v) => {
    if (v.kind === "control") return P.decodeControl(v.wire);
    const data = b64bytes(v.wire);
    let u;
    if (v.screen) {
      const s = new P.ViewerSession();
      s.receive(JSON.stringify({t: "hello", protocol: "rdesk", version: 1, nonce,
                                methods: "password", server: "vectors"}));
      s.auth("secret", "vectors");
      s.receive(JSON.stringify({t: "welcome", role: "control", viewer_id: 1,
                                width: v.screen[0], height: v.screen[1], name: "vectors"}));
      u = s.receive(data.buffer);
    } else {
      u = P.decodeUpdate(data.buffer);
    }
    return {seq: u.seq, timestamp_us: u.timestamp_us.toString(), exact: u.exact,
            rects: u.rects.map((r) => ({x: r.x, y: r.y, w: r.w, h: r.h, encoding: r.encoding,
                                        payload: bytesB64(r.payload)}))};
  };
  const failures = [];
  for (const v of vectors) {
    let got, error = null;
    try { got = decode(v); } catch (e) { error = e; }
    if (v.valid) {
      if (error) failures.push(`${v.name}: refused (${error.message})`);
      else if (!same(got, v.decoded)) failures.push(`${v.name}: ${JSON.stringify(got)}`);
      else if (v.kind === "control") {
        const again = P.decodeControl(P.encodeControl(got));
        if (!same(again, v.decoded)) failures.push(`${v.name}: re-encoding differs`);
      }
    } else if (!error) {
      failures.push(`${v.name}: accepted`);
    } else if (!(error instanceof P.ProtocolError)) {
      failures.push(`${v.name}: ${error.name}: ${error.message}`);
    } else if (error.code !== v.code) {
      failures.push(`${v.name}: close code ${error.code}, want ${v.code}`);
    }
  }
  return [vectors.length, failures];
}
"""


def test_shared_codec_vectors_pass_in_the_browser(host: RunningHost, page: Any) -> None:
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    page.goto(_https(host))
    count, failures = page.evaluate(_RUN_VECTORS, vectors)
    assert count == len(vectors) > 100
    assert failures == []


def _schema_table() -> dict[str, dict[str, dict[str, Any]]]:
    """messages.py's schemas in the shape of protocol.js's SCHEMAS table."""
    from rdesk.protocol.fields import ROLES, AccessField, Bool, Int, MayOmit, OneOf, Str
    from rdesk.protocol.messages import CONTROL_TYPES

    def spec(field: object) -> dict[str, Any]:
        if isinstance(field, MayOmit):
            return {"kind": "mayOmit", "field": spec(field.field)}
        if isinstance(field, AccessField):  # an Access level: one of its wire strings
            return {"kind": "oneOf", "values": list(ROLES)}
        if isinstance(field, Int):
            return {"kind": "int", "lo": field.lo, "hi": field.hi}
        if isinstance(field, Str):
            return {"kind": "str", "min": field.min_len, "max": field.max_len}
        if isinstance(field, Bool):
            return {"kind": "bool"}
        assert isinstance(field, OneOf), field
        return {"kind": "oneOf", "values": list(field.values)}

    return {
        t: {name: spec(f) for name, f in cls.FIELDS.items()}  # type: ignore[attr-defined]
        for t, cls in CONTROL_TYPES.items()
    }


def test_javascript_schemas_match_messages_py(host: RunningHost, page: Any) -> None:
    """protocol.js's schema and state tables are those of messages.py and states.py."""
    from rdesk.protocol.states import TRANSITIONS, Direction, Role, State

    page.goto(_https(host))
    js = page.evaluate(
        """async () => {
            const P = await import("/core/protocol.js");
            return [P.SCHEMAS, [...P.HOST_ACTIVE].sort(), [...P.VIEWER_ACTIVE].sort()];
        }"""
    )
    schemas, host_active, viewer_active = js
    assert schemas == _schema_table()
    table = TRANSITIONS[(Role.VIEWER, State.ACTIVE)]

    def names(direction: Direction) -> list[str]:
        return sorted(getattr(cls, "T", "update") for cls in table[direction])

    assert host_active == names(Direction.RECEIVE)
    assert viewer_active == names(Direction.SEND)


def _image(fmt: str, size: tuple[int, int], **options: Any) -> str:
    import io

    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, fmt, **options)
    return base64.b64encode(out.getvalue()).decode()


def test_image_headers_are_checked_before_decoding(host: RunningHost, page: Any) -> None:
    cases = []
    for fmt, enc, options in (("JPEG", 1, {}), ("PNG", 2, {}), ("WEBP", 3, {}),
                              ("WEBP", 3, {"lossless": True})):
        payload = _image(fmt, (40, 30), **options)
        cases += [
            [payload, enc, 40, 30, "40x30"],   # declared size equals the rect
            [payload, enc, 64, 64, "40x30"],   # smaller: the host downscaled it
            [payload, enc, 39, 30, "refused"],  # wider than the rect
            [payload, enc, 40, 29, "refused"],  # taller than the rect
        ]
    png = _image("PNG", (8, 8))
    cases += [[png, 1, 64, 64, "refused"], [png, 3, 64, 64, "refused"],
              [base64.b64encode(b"not an image at all").decode(), 2, 64, 64, "refused"]]
    results = page.goto(_https(host)) and page.evaluate(
        """async (cases) => {
            const P = await import("/core/protocol.js");
            return cases.map(([b64, encoding, w, h]) => {
                const payload = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                try {
                    const [iw, ih] = P.checkImageHeader({x: 0, y: 0, w, h, encoding, payload});
                    return `${iw}x${ih}`;
                } catch (e) {
                    return e instanceof P.ProtocolError ? "refused" : String(e);
                }
            });
        }""",
        cases,
    )
    assert results == [case[4] for case in cases]


def test_keysyms_from_keyboard_events(host: RunningHost, page: Any) -> None:
    page.goto(_https(host))
    got = page.evaluate(
        """async () => {
            const K = await import("/core/keys.js");
            const cases = [["a", "KeyA"], ["A", "KeyA"], [" ", "Space"], ["é", "KeyE"],
                           ["€", "KeyE"], ["😀", ""], ["Enter", "Enter"], ["Enter", "NumpadEnter"],
                           ["Shift", "ShiftLeft"], ["Shift", "ShiftRight"],
                           ["Control", "ControlLeft"], ["Alt", "AltLeft"], ["Meta", "MetaLeft"],
                           ["AltGraph", "AltRight"], ["F1", "F1"], ["F12", "F12"],
                           ["ArrowLeft", "ArrowLeft"], ["Backspace", "Backspace"],
                           ["Tab", "Tab"], ["Escape", "Escape"], ["Delete", "Delete"],
                           ["+", "NumpadAdd"], ["Dead", "BracketLeft"], ["Unidentified", ""]];
            return cases.map(([key, code]) => K.keysymFor({key, code}));
        }"""
    )
    assert got == [
        0x61, 0x41, 0x20, 0xE9, 0x010020AC, 0x0101F600, 0xFF0D, 0xFF8D, 0xFFE1, 0xFFE2,
        0xFFE3, 0xFFE9, 0xFFEB, 0xFE03, 0xFFBE, 0xFFC9, 0xFF51, 0xFF08, 0xFF09, 0xFF1B,
        0xFFFF, 0x2B, None, None,
    ]


def test_a_host_asking_its_user_first_admits_the_page(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], page_and_log: tuple[Any, PageLog]
) -> None:
    """`--consent ask`: the host sends a notice before its welcome and waits for its user,
    longer than the page's 10 s handshake budget; the page must take the notice and wait."""
    page, log = page_and_log
    host = host_factory(xvfb.display, consent="ask")

    async def answer(viewer_id: int, name: str, role: str, source: str) -> bool:
        await asyncio.sleep(11)  # past HANDSHAKE_TIMEOUT_MS, within the notice's allowance
        return True

    async def install() -> None:
        host.server.consent = answer

    host.call(install())
    _login(page, host)
    _wait_active(page)
    assert page.evaluate("document.body.dataset.role") == "control"
    assert not log.errors(), log.lines
