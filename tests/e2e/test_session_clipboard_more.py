"""The clipboard's options, with real parts: PRIMARY (``--clipboard-primary``) both ways
between xclip on Xvfb and a real viewer, and recordings, which keep no clipboard text unless
the host runs with ``--record-clipboard``.

The host is the one of tests/e2e/test_session_clipboard.py: a real host on its own Xvfb with
the product's clipboard hub, viewers over real TLS websockets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rdesk.cli import main
from rdesk.client.clipboard import ClipboardRefused, get_text, set_text
from rdesk.client.connection import connect
from rdesk.host.clipboard import ClipboardHub, start_clipboard
from rdesk.recording.format import Kind, read_recording
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb

pytestmark = pytest.mark.skipif(shutil.which("xclip") is None, reason="needs xclip")


def _xclip(display: str, selection: str, text: str | None = None) -> str:
    """Read ``selection`` (``text`` None), or own it with ``text`` (xclip's child keeps it)."""
    args = ["xclip", "-selection", selection, "-o" if text is None else "-i"]
    out = subprocess.run(args, input=None if text is None else text.encode(), timeout=20,
                         env=dict(os.environ, DISPLAY=display), capture_output=text is None)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode() if text is None else ""


@pytest.fixture
def display(xvfb_factory: Callable[..., Xvfb]) -> str:
    return xvfb_factory(320, 240).display


@pytest.fixture
def hosts(host_factory: Callable[..., RunningHost]) -> Iterator[Callable[..., RunningHost]]:
    hubs: list[ClipboardHub] = []

    def make(display: str, **settings: Any) -> RunningHost:
        host = host_factory(display, **settings)

        async def attach() -> None:
            hub = start_clipboard(host.server.settings, display, host.server.event)
            hubs.append(hub)
            setattr(host.server, "clipboard", hub)  # noqa: B010 — what rdesk/host/app.py does

        host.call(attach())
        return host

    yield make
    for hub in hubs:
        hub.close()


async def _session(host: RunningHost, display: str, selection: str) -> None:
    """A viewer's text into ``selection`` on the host, then the host's text out of it."""
    async with await connect(host.url, PASSWORD, known_hosts=None,
                             pinned=host.fingerprint) as conn:
        await set_text(conn, "pasted in: hunter2 ✓", selection)
        assert await asyncio.to_thread(_xclip, display, selection) == "pasted in: hunter2 ✓"
        await asyncio.to_thread(_xclip, display, selection, "copied out: sw0rdfish")
        await conn.wait_for(lambda: conn.clipboard.texts.get(selection) == "copied out: "
                            "sw0rdfish", 30)
        assert await get_text(conn, selection) == "copied out: sw0rdfish"


async def test_primary_both_ways_only_with_the_option(display: str, hosts: Any) -> None:
    """``--clipboard-primary``: the mouse selection goes both ways, as CLIPBOARD does; without
    it the host refuses PRIMARY with the reason, and leaves it alone."""
    await _session(hosts(display, clipboard="both", clipboard_primary=True), display, "primary")

    plain = hosts(display, clipboard="both")
    await asyncio.to_thread(_xclip, display, "primary", "the owner's selection")
    async with await connect(plain.url, PASSWORD, known_hosts=None,
                             pinned=plain.fingerprint) as conn:
        with pytest.raises(ClipboardRefused, match="--clipboard-primary"):
            await set_text(conn, "not wanted", "primary")
        # Reading it is refused for the same reason, not "holds no text".
        with pytest.raises(ClipboardRefused, match="--clipboard-primary"):
            await get_text(conn, "primary")
    assert await asyncio.to_thread(_xclip, display, "primary") == "the owner's selection"


async def _recording(records: Path) -> Path:
    deadline = asyncio.get_running_loop().time() + 20
    while True:  # the host closes the recording once it saw the viewer go
        paths = list(records.glob("*.rdrec"))
        if paths and Kind.END in {r.kind for r in read_recording(paths[0]).records()}:
            return paths[0]
        assert asyncio.get_running_loop().time() < deadline, paths
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("asked", [False, True])
async def test_recordings_keep_clipboard_text_only_when_asked(
        display: str, hosts: Any, tmp_path: Path, asked: bool,
        capsys: pytest.CaptureFixture[str]) -> None:
    records = tmp_path / "rec"
    host = hosts(display, clipboard="both", record_dir=records, record_clipboard=asked)
    await _session(host, display, "clipboard")
    path = await _recording(records)
    kinds = [r.kind for r in read_recording(path).records()]
    assert Kind.UPDATE in kinds
    raw = path.read_bytes()
    assert main(["--config-dir", str(tmp_path), "play", str(path), "--export-png",
                 str(tmp_path / "png")]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("rdesk: clipboard at ")]
    if not asked:  # neither the text nor its base64, either way
        assert Kind.CLIPBOARD not in kinds and b"clip_" not in raw
        assert b"hunter2" not in raw and b"aHVudGVyMi" not in raw and b"sw0rdfish" not in raw
        assert shown == []
        return
    assert Kind.CLIPBOARD in kinds
    # The host's text twice: pushed when xclip took the selection, then answering the get.
    assert [line.split(" ", 4)[4] for line in shown] == [
        "viewer to host, clipboard, 22 bytes: pasted in: hunter2 \\u2713",
        "host to viewer, clipboard, 21 bytes: copied out: sw0rdfish",
        "host to viewer, clipboard, 21 bytes: copied out: sw0rdfish",
    ], shown


def test_the_page_shows_the_fallback_panel_when_it_may_not_write(
        display: str, hosts: Any) -> None:
    """The page's clipboard fallback: a real Chromium page whose ``writeText`` is refused
    shows the host's text in its panel to copy by hand; Close hides it. (The panel was
    referenced by app/clipboard.js but missing from the page: nothing was shown.)"""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed")
    import time

    from playwright.sync_api import sync_playwright

    host = hosts(display, clipboard="both")

    def poll(page: Any, expression: str) -> Any:
        deadline = time.monotonic() + 30
        while not (value := page.evaluate(expression)):
            assert time.monotonic() < deadline, expression
            page.wait_for_timeout(100)
        return value

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"https://127.0.0.1:{host.port}/")
            page.fill("#password", PASSWORD)
            page.click("#connect")
            page.wait_for_selector("body[data-state=active]", state="attached")
            assert page.is_hidden("#clipboard-panel")
            # A browser that refuses the write, as one does for a page that is not focused or
            # whose site setting blocks the clipboard. Headless Chromium lets a focused page
            # write whatever its permission says (CDP's Browser.setPermission "denied" and a tab
            # in front were both tried: writeText still succeeded), so its refusal is made here,
            # the one thing not real in this test.
            page.evaluate("""() => { navigator.clipboard.writeText = () => Promise.reject(
                new DOMException("Write permission denied.", "NotAllowedError")); }""")
            _xclip(display, "clipboard", "copied on the host ✓")
            poll(page, "!document.getElementById('clipboard-panel').hidden")
            assert page.evaluate("document.querySelector('#clipboard-panel textarea').value"
                                 ) == "copied on the host ✓"
            assert page.evaluate("document.body.dataset.clipboardReceived") is None
            page.click("#clipboard-panel-close")
            assert page.is_hidden("#clipboard-panel")
            assert errors == []
        finally:
            browser.close()
