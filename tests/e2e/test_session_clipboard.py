"""Clipboard text both ways between a real X client (xclip) on Xvfb and real viewers.

The host runs on its own Xvfb with the product's hub (rdesk.host.clipboard.start_clipboard);
viewers are the Python client over real TLS websockets, and the ``rdesk clip`` CLI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from rdesk.client.clipboard import ClipboardRefused, get_text, set_text
from rdesk.client.connection import Connection, connect
from rdesk.host.clipboard import ClipboardHub, start_clipboard
from rdesk.host.credentials import HostCredentials
from rdesk.host.security.passwords import PasswordStore
from rdesk.protocol.clipboard import ClipOffer, chunks
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb

pytestmark = pytest.mark.skipif(shutil.which("xclip") is None, reason="needs xclip")

VIEW_PASSWORD = "only looking here"


def _xclip_out(display: str) -> str:
    out = subprocess.run(
        ["xclip", "-selection", "clipboard", "-o"], env=dict(os.environ, DISPLAY=display),
        capture_output=True, timeout=20,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.decode("utf-8")


def _xclip_in(display: str, text: str) -> None:
    # xclip forks a child that owns the selection until another client takes it.
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-i"], input=text.encode("utf-8"),
        env=dict(os.environ, DISPLAY=display), timeout=20, check=True,
    )  # fmt: skip


class Audit(list[tuple[str, dict[str, object]]]):
    def __call__(self, kind: str, **fields: object) -> None:
        self.append((kind, fields))


def _start(
    host_factory: Callable[..., RunningHost], display: str, **settings: Any
) -> tuple[RunningHost, ClipboardHub, Audit]:
    credentials = HostCredentials(
        PasswordStore.from_password(PASSWORD), PasswordStore.from_password(VIEW_PASSWORD)
    )
    host = host_factory(display, credentials=credentials, **settings)
    audit = Audit()

    async def attach() -> ClipboardHub:
        hub = start_clipboard(host.server.settings, display, audit)
        setattr(host.server, "clipboard", hub)  # noqa: B010 — what rdesk/host/app.py does
        return hub

    hub = host.call(attach())
    return host, hub, audit


async def _viewer(host: RunningHost, password: str = PASSWORD) -> Connection:
    return await connect(host.url, password, known_hosts=None, pinned=host.fingerprint)


@pytest.fixture
def display(xvfb_factory: Callable[..., Xvfb]) -> str:
    return xvfb_factory(320, 240).display


@pytest.fixture
def hosts(host_factory: Callable[..., RunningHost]) -> Any:
    made: list[ClipboardHub] = []

    def make(display: str, **settings: Any) -> tuple[RunningHost, ClipboardHub, Audit]:
        host, hub, audit = _start(host_factory, display, **settings)
        made.append(hub)
        return host, hub, audit

    yield make
    for hub in made:
        hub.close()


async def test_viewer_text_lands_in_the_host_clipboard(display: str, hosts: Any) -> None:
    host, _, audit = hosts(display)  # the default policy: to-host
    text = "héllo\tclipboard ✓\nsecond line"
    big = "0123456789abcdef" * 40_000  # 640 000 bytes: many chunks, and INCR to the X client
    async with await _viewer(host) as conn:
        await set_text(conn, text)
        assert await asyncio.to_thread(_xclip_out, display) == text
        await set_text(conn, big)
        assert await asyncio.to_thread(_xclip_out, display) == big
    events = [f for kind, f in audit if kind == "clipboard"]
    assert [(e["direction"], e["size"], e["reason"]) for e in events] == [
        ("to-host", len(text.encode()), "ok"), ("to-host", len(big), "ok"),
    ]
    assert all(e["viewer"] == events[0]["viewer"] for e in events)
    assert not any(text in repr(e) for e in events)  # never the content


async def test_host_text_reaches_the_viewer(display: str, hosts: Any) -> None:
    host, _, audit = hosts(display, clipboard="both")
    text = "copied on the host — ünïcode\n" * 20_000  # > 256 KiB: the X owner sends INCR
    async with await _viewer(host) as conn:
        await asyncio.to_thread(_xclip_in, display, text)
        # Pushed when the host's selection changes (XFIXES), without asking...
        await conn.wait_for(lambda: conn.clipboard.texts.get("clipboard") == text, 30)
        # ...and fetched on demand.
        assert await get_text(conn) == text
    sent = [f for kind, f in audit if kind == "clipboard" and f["direction"] == "to-viewer"]
    assert sent and all(f["size"] == len(text.encode()) for f in sent)


async def test_default_policy_keeps_the_host_clipboard_local(display: str, hosts: Any) -> None:
    host, _, _ = hosts(display)
    async with await _viewer(host) as conn:
        await asyncio.to_thread(_xclip_in, display, "a local secret")
        with pytest.raises(ClipboardRefused, match="does not share its clipboard"):
            await get_text(conn)
        assert "clipboard" not in conn.clipboard.texts


async def test_view_only_viewer_never_writes_the_host_clipboard(
    display: str, hosts: Any
) -> None:
    host, _, audit = hosts(display, clipboard="both")
    await asyncio.to_thread(_xclip_in, display, "the host's own")
    async with await _viewer(host, VIEW_PASSWORD) as conn:
        with pytest.raises(ClipboardRefused, match="view-only viewers may not write"):
            await set_text(conn, "injected")
        with pytest.raises(ClipboardRefused, match="view-only viewers do not receive"):
            await get_text(conn)
    assert await asyncio.to_thread(_xclip_out, display) == "the host's own"
    assert ("to-host", "view-only viewers may not write the host's clipboard") in [
        (f["direction"], f["reason"]) for kind, f in audit if kind == "clipboard"
    ]


async def test_cap_and_nul_are_refused_with_a_reason(display: str, hosts: Any) -> None:
    host, _, _ = hosts(display, clipboard="both", clipboard_max=1000)
    async with await _viewer(host) as conn:
        conn.clipboard.set_cap(1 << 20)  # this viewer would send more: the host refuses
        with pytest.raises(ClipboardRefused, match="2000 bytes exceeds the 1000-byte limit"):
            await set_text(conn, "x" * 2000)
        # An offer announcing 60 MiB is refused on its announcement: no chunk is sent or kept.
        await conn.send_clipboard(ClipOffer(77, "clipboard", 60 << 20))
        await conn.wait_for(lambda: 77 in conn.clipboard.results, 10)
        assert "exceeds the 1000-byte limit" in conn.clipboard.results[77].reason
        # A NUL (sent around the client's own check) is refused by the host, not typed in.
        for message in chunks(78, "a\x00b"):
            await conn.send_clipboard(message)
        await conn.wait_for(lambda: 78 in conn.clipboard.results, 10)
        assert conn.clipboard.results[78].reason == "clipboard text contains a NUL character"
        await set_text(conn, "fits")  # the connection is still good
    assert await asyncio.to_thread(_xclip_out, display) == "fits"
    # The host's own oversize text is not read, and says so in the audit.
    host2, _, audit = hosts(display, clipboard="both", clipboard_max=1000)
    async with await _viewer(host2) as conn:
        await asyncio.to_thread(_xclip_in, display, "y" * 5000)
        for _ in range(100):  # until the host has seen the new owner and refused its text
            if ("to-viewer", "clipboard text of 5000 bytes exceeds the 1000-byte limit") in [
                (f.get("direction"), f.get("reason")) for _, f in audit
            ]:
                break
            await asyncio.sleep(0.1)
        with pytest.raises(ClipboardRefused, match="holds no text"):
            await get_text(conn)
        assert "clipboard" not in conn.clipboard.texts


def test_rdesk_clip_cli_both_ways(display: str, hosts: Any, tmp_path: Any) -> None:
    host, _, _ = hosts(display, clipboard="both")
    base = [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "viewer")]
    set_ = subprocess.run(
        [*base, "clip", "set", host.url, "-", *host.viewer_args()],
        input=b"from the CLI\nline 2", capture_output=True, timeout=60,
    )  # fmt: skip
    assert set_.returncode == 0, set_.stderr
    assert _xclip_out(display) == "from the CLI\nline 2"
    _xclip_in(display, "the host's copy ✓")
    for _ in range(50):  # the host reads its new owner's text asynchronously
        got = subprocess.run(
            [*base, "clip", "get", host.url, *host.viewer_args()],
            capture_output=True, timeout=60,
        )  # fmt: skip
        if got.stdout.decode() == "the host's copy ✓":
            break
    assert got.returncode == 0, got.stderr
    assert got.stdout.decode() == "the host's copy ✓"
    refused = subprocess.run(  # the viewer would send it (--max): the host's 1 MiB cap refuses
        [*base, "clip", "set", host.url, "-", "--max", "4000000", *host.viewer_args()],
        input=b"a\x01" * 600_000, capture_output=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 7
    assert refused.stderr.decode().strip().splitlines() == [
        "rdesk: clipboard refused: clipboard text of 1200000 bytes exceeds the "
        "1048576-byte limit"
    ]


# --- the browser viewer, in headless Chromium with clipboard permissions ------------------------


@pytest.fixture
def chromium_page(tmp_path: Any) -> Any:
    from pathlib import Path

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(ignore_https_errors=True)
            context.set_default_timeout(30_000)
            errors: list[str] = []
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, context, errors
        finally:
            browser.close()


def _poll(page: Any, expression: str, timeout: float = 30.0) -> Any:
    """Evaluate ``expression`` in the page until truthy (the page's CSP forbids
    wait_for_function's eval)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < deadline, f"not true within {timeout}s: {expression}"
        page.wait_for_timeout(100)


def test_browser_clipboard_both_ways(display: str, hosts: Any, chromium_page: Any) -> None:
    page, context, errors = chromium_page
    host, _, _ = hosts(display, clipboard="both")
    origin = f"https://127.0.0.1:{host.port}"
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    page.goto(origin + "/")
    page.fill("#password", PASSWORD)
    page.click("#connect")
    page.wait_for_selector("body[data-state=active]", state="attached")
    # Host -> browser: an X client copies; the page writes it into the local clipboard.
    _xclip_in(display, "copied on the host ✓\nline 2")
    _poll(page, "document.body.dataset.clipboardReceived")
    assert page.evaluate("navigator.clipboard.readText()") == "copied on the host ✓\nline 2"
    # Browser -> host: the local clipboard changes; back on the page (focus), it is sent.
    page.evaluate("navigator.clipboard.writeText('from the browser — ünïcode')")
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    _poll(page, "document.body.dataset.clipboardSent")
    assert _xclip_out(display) == "from the browser — ünïcode"
    # A paste event into the page sends its text too.
    page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.setData("text/plain", "pasted in");
            document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data }));
        }"""
    )
    _poll(page, "document.body.dataset.clipboardSent === String('pasted in'.length)")
    assert _xclip_out(display) == "pasted in"
    assert errors == []


# --- the Tk window (rdesk connect) on its own Xvfb ----------------------------------------------


def test_tk_window_clipboard_both_ways(
    xvfb_factory: Callable[..., Xvfb], display: str, hosts: Any, tmp_path: Any
) -> None:
    from tests.xserver import run_xdotool, wait_until

    host, _, _ = hosts(display, clipboard="both")
    viewer_x = xvfb_factory(800, 600).display
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "tk"), "connect",
         host.url, *host.viewer_args()],
        env=dict(os.environ, DISPLAY=viewer_x), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        def window() -> str:
            try:
                out = run_xdotool(viewer_x, "search", "--onlyvisible", "--name", r"\(control\)")
            except Exception:
                return ""
            return out.split()[0] if out.split() else ""

        assert wait_until(lambda: bool(window()) or proc.poll() is not None, 30, interval=0.2)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        # Host -> Tk: the window takes the viewer display's CLIPBOARD.
        _xclip_in(display, "host text for Tk ✓")

        def viewer_has(text: str) -> bool:
            out = subprocess.run(
                ["xclip", "-selection", "clipboard", "-o"], env=dict(os.environ, DISPLAY=viewer_x),
                capture_output=True, timeout=10,
            )  # fmt: skip
            return out.stdout.decode("utf-8", "replace") == text

        assert wait_until(lambda: viewer_has("host text for Tk ✓"), 30, interval=0.2)
        # Tk -> host: another program on the viewer's display copies; the window regains focus.
        _xclip_in(viewer_x, "copied beside the viewer")
        win = window()
        for _ in range(5):  # focus away and back until the window's FocusIn has sent it
            _focus_root(viewer_x)
            run_xdotool(viewer_x, "windowfocus", "--sync", win)
            if wait_until(lambda: _xclip_out(display) == "copied beside the viewer", 5, 0.2):
                break
        assert _xclip_out(display) == "copied beside the viewer"
    finally:
        proc.terminate()
        proc.wait(15)


def _focus_root(display: str) -> None:
    from Xlib import X
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display)
    try:
        conn.set_input_focus(X.PointerRoot, X.RevertToPointerRoot, X.CurrentTime)
        conn.sync()
    finally:
        conn.close()
