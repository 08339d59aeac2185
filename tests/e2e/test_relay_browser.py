"""The browser viewer through a relay, in Debian's headless Chromium: a real ``rdesk relay``
process serves the page, a real ``rdesk host --relay --no-listen`` on Xvfb is reached by ID.

- the page from the relay logs in by ID and password; ``data-exact`` becomes true and the
  canvas equals what a real X client painted; the host's fingerprint is pinned under the ID;
- the browser's tunnel passes the Python-made vectors (``tests/relay/tunnel_vectors.py``) in
  Chromium's WebCrypto too;
- a relay that presents another genuine host's key (this test's own, in front of the real one,
  serving the same page) is refused by the page before anything but the ClientHello is sent,
  so before the password; so is a host whose certificate differs from the pinned one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from rdesk.relay.page import judge
from rdesk.tunnel.wire import MAX_WIRE_MESSAGE
from tests.e2e.conftest import PASSWORD
from tests.e2e.relaysite import Site, site, stop
from tests.e2e.test_relay_hostile import Splicer, _other_id
from tests.relay.tunnel_vectors import make_vectors
from tests.xserver import Painter, Xvfb, image_diff

CHROMIUM = Path("/usr/bin/chromium")
VECTORS_JS = Path(__file__).resolve().parents[1] / "relay" / "tunnel_vectors.mjs"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed"
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[tuple[Any, list[str]]]:
    """A fresh page (self-signed certificates accepted) and its console/page-error lines."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )
        try:
            context = await browser.new_context(ignore_https_errors=True,
                                                viewport={"width": 900, "height": 640})
            context.set_default_timeout(TIMEOUT_MS)
            page = await context.new_page()
            lines: list[str] = []
            page.on("console", lambda m: lines.append(f"console.{m.type}: {m.text}"))
            page.on("pageerror", lambda e: lines.append(f"pageerror: {e}"))
            yield page, lines
        finally:
            await browser.close()


async def wait_js(page: Any, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll ``expression`` from outside (the page's CSP forbids eval inside it)."""
    for _ in range(int(timeout * 10)):
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {timeout}s: {expression}")


async def login(page: Any, port: int, host_id: str, password: str = PASSWORD) -> None:
    await page.goto(f"https://127.0.0.1:{port}/")
    await page.wait_for_selector("#host-id")  # the relay's page asks for an ID
    await page.fill("#host-id", host_id.lower().replace("-", " "))  # as a person may type it
    await page.fill("#password", password)
    await page.click("#connect")


async def canvas_image(page: Any) -> Image.Image:
    width, height, b64 = await page.evaluate(
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
    rgba = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(height, width, 4)
    return Image.fromarray(rgba[:, :, :3].copy(), "RGB")


@pytest.mark.timeout(240)
async def test_page_from_the_relay_logs_in_by_id_pixel_exact(xvfb: Xvfb, tmp_path: Path
                                                             ) -> None:
    async with site(tmp_path, xvfb.display) as s, chromium() as (page, lines):
        with Painter(xvfb.display, seed=11) as painter:
            await login(page, s.port, s.host_id)
            await page.wait_for_selector("body[data-state=active]", state="attached")
            await wait_js(page, "document.body.dataset.exact === 'true'")
            assert image_diff(await canvas_image(page), painter.expected())[0] == 0
            painter.rect(60, 40, 31, 17, "a1b2c3")
            await wait_js(page, "document.body.dataset.exact === 'true'")
            for _ in range(100):  # the change arrives in a later update
                if image_diff(await canvas_image(page), painter.expected())[0] == 0:
                    break
                await asyncio.sleep(0.1)
            assert image_diff(await canvas_image(page), painter.expected())[0] == 0
        # The host's key is pinned under its ID, and it is the host's own.
        pin = await page.evaluate(f"localStorage.getItem('rdesk.pin.{s.host_id}')")
        assert pin == make_pin(tmp_path / "host")
        assert (await page.evaluate("document.body.dataset.role")) == "control"
        # The host saw a relayed viewer log in with the password.
        logins = [e for e in audit_events(tmp_path) if e.get("kind") == "auth_success"]
        sessions = [e["session"] for e in s.relay_events("rendezvous")]
        assert [e["source"] for e in logins] == [f"relay:{sessions[0]}"], logins
    assert not [line for line in lines if "Content Security Policy" in line], lines
    assert not [line for line in lines if line.startswith("pageerror")], lines


@pytest.mark.timeout(240)
async def test_an_invite_code_through_the_relay_logs_in_once(xvfb: Xvfb, tmp_path: Path
                                                             ) -> None:
    """A support session: the host prints its ID and a one-time code, the person on the
    phone types both into the relay's page; the code works once."""
    async with site(tmp_path, xvfb.display, extra=("--invite", "control:30")) as s:
        code = next(line for line in s.banner if "invite code" in line).split()[-1]
        with Painter(xvfb.display, seed=23) as painter:
            async with chromium() as (page, lines):
                await login(page, s.port, s.host_id, code)
                await page.wait_for_selector("body[data-state=active]", state="attached")
                await wait_js(page, "document.body.dataset.exact === 'true'")
                assert image_diff(await canvas_image(page), painter.expected())[0] == 0
                assert (await page.evaluate("document.body.dataset.role")) == "control"
                assert not [line for line in lines if line.startswith("pageerror")], lines
            async with chromium() as (page, lines):  # the same code again: used up
                await login(page, s.port, s.host_id, code)
                await wait_js(page, "document.getElementById('message').textContent"
                                    ".includes('Wrong password')")
                assert (await page.evaluate("document.body.dataset.state")) == "login"
        sessions = [e["session"] for e in s.relay_events("rendezvous")]
    events = [e for e in audit_events(tmp_path) if str(e.get("kind")).startswith("auth")]
    assert [(e["kind"], e["source"]) for e in events] == [
        ("auth_success", f"relay:{sessions[0]}"), ("auth_failure", f"relay:{sessions[1]}")]
    assert events[0]["role"] == "control"


def audit_events(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "host-audit.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def make_pin(config_dir: Path) -> str:
    """The host's key pin (SPKI SHA-256), as ``rdesk host`` prints it."""
    from rdesk.host.security.tls import host_key_fingerprint

    return host_key_fingerprint(config_dir / "host.crt")


@pytest.mark.timeout(240)
async def test_a_certificate_pin_stored_before_key_pins_is_honoured_and_replaced(
    xvfb: Xvfb, tmp_path: Path,
) -> None:
    from rdesk.host.security.tls import certificate_fingerprint

    async with site(tmp_path, xvfb.display) as s, chromium() as (page, _):
        old = certificate_fingerprint(tmp_path / "host" / "host.crt")
        await page.goto(f"https://127.0.0.1:{s.port}/")
        await page.evaluate(f"localStorage.setItem('rdesk.pin.{s.host_id}', '{old}')")
        await login(page, s.port, s.host_id)
        await page.wait_for_selector("body[data-state=active]", state="attached")
        pin = await page.evaluate(f"localStorage.getItem('rdesk.pin.{s.host_id}')")
        assert pin == make_pin(tmp_path / "host") != old


@pytest.mark.timeout(180)
async def test_browser_tunnel_passes_the_python_vectors_in_chromium(xvfb: Xvfb, tmp_path: Path
                                                                    ) -> None:
    vectors = make_vectors()
    async with site(tmp_path, xvfb.display) as s, chromium() as (page, lines):
        # The check module is served at the relay's origin (the CSP allows only 'self').
        body = VECTORS_JS.read_text()
        await page.route("**/test/vectors.mjs", lambda route: route.fulfill(
            status=200, content_type="text/javascript", body=body))
        await page.goto(f"https://127.0.0.1:{s.port}/")
        failures = await page.evaluate(
            """async (vectors) => {
                const tunnel = await import("/core/tunnel.js");
                const { check } = await import("/test/vectors.mjs");
                return check(tunnel, vectors);
            }""",
            vectors,
        )
    assert failures == []
    assert not [line for line in lines if line.startswith("pageerror")], lines


class PageSplicer(Splicer):
    """The hostile test relay, serving the relay's page as well as its ``/connect``."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Splicer]:
        def page(ws: ServerConnection, request: Request) -> Response | None:
            return judge(request)

        async with serve(self.handle, "127.0.0.1", 0, ssl=self.ssl, compression=None,
                         max_size=MAX_WIRE_MESSAGE, process_request=page) as server:
            self.port = server.sockets[0].getsockname()[1]
            yield self


async def refused_message(page: Any) -> str:
    await wait_js(page, "document.getElementById('message').textContent.length > 0")
    assert (await page.evaluate("document.body.dataset.state")) == "login"
    return str(await page.inner_text("#message"))


@pytest.mark.timeout(240)
async def test_a_relay_presenting_another_hosts_key_is_refused_before_the_password(
    xvfb: Xvfb, tmp_path: Path,
) -> None:
    async with site(tmp_path, xvfb.display) as s:
        other = await s.start_host(xvfb.display, "other-host")
        try:
            other_id = await _other_id(tmp_path)
            splicer = PageSplicer(tmp_path, s.port, "impersonate", other_id,
                                  tmp_path / "other-host")
            async with splicer.running(), chromium() as (page, _):
                await login(page, splicer.port, s.host_id)
                message = await refused_message(page)
                stored = await page.evaluate(f"localStorage.getItem('rdesk.pin.{s.host_id}')")
        finally:
            await stop(other)
    assert "host ID:" in message and f"not {s.host_id}" in message, message
    assert stored is None  # nothing pinned for a refused host
    # What the page sent the relay: its connect request and its ClientHello, nothing more.
    sent = splicer.from_viewer
    assert [type(m) for m in sent] == [str, bytes] and len(sent[1]) == 112, sent
    assert json.loads(sent[0]) == {"t": "connect", "id": s.host_id, "version": 1}
    assert PASSWORD.encode() not in splicer.viewer_bytes()


@pytest.mark.timeout(240)
async def test_a_host_whose_certificate_is_not_the_pinned_one_is_refused(
    xvfb: Xvfb, tmp_path: Path,
) -> None:
    other_pin = make_vectors()["other_pin"]  # a genuine fingerprint, of some other certificate
    async with site(tmp_path, xvfb.display) as s, chromium() as (page, _):
        await page.goto(f"https://127.0.0.1:{s.port}/")
        await page.evaluate(f"localStorage.setItem('rdesk.pin.{s.host_id}', '{other_pin}')")
        await login(page, s.port, s.host_id)
        message = await refused_message(page)
    assert "host ID:" in message and "pinned" in message, message
    assert not [e for e in audit_events(tmp_path) if str(e.get("kind", "")).startswith("auth")]


@pytest.mark.timeout(120)
async def test_an_unknown_id_is_refused_by_the_relay_in_one_line(tmp_path: Path) -> None:
    s = Site(tmp_path)
    try:
        await s.start_relay()
        async with chromium() as (page, lines):
            await login(page, s.port, "0000-0000-00000")
            message = await refused_message(page)
            # A mistyped ID is caught by the page itself, before any connection.
            await page.fill("#host-id", "0000-0000-0000")
            await page.fill("#password", PASSWORD)
            await page.click("#connect")
            await wait_js(page, "document.getElementById('message').textContent"
                                ".includes('13 symbols')")
    finally:
        await stop(s.relay)
    assert "relay refused 0000-0000-00000: unknown or offline ID" in message, message
    assert not [line for line in lines if line.startswith("pageerror")], lines
