"""The host's real cursor reaches the viewer: an X client defines a distinctive cursor on Xvfb;
the viewer's image, hot spot and serial equal what XFIXES reports, and a cursor shown again
comes from the viewer's cache (``cursor_use``) and is not read from the X server again.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PIL import Image

from rdesk.client.connection import Connection, connect
from rdesk.host.screen.cursor import CursorHub
from rdesk.protocol.cursor import CursorShape, CursorUse
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb


class CursorClient:
    """An X client with a full-screen window whose cursor it sets (bitmap cursors)."""

    def __init__(self, display: str) -> None:
        from Xlib import X
        from Xlib import display as xdisplay

        self.X = X
        self.conn = xdisplay.Display(display)
        self.conn.xfixes_query_version()
        screen = self.conn.screen()
        self.window = screen.root.create_window(
            0, 0, screen.width_in_pixels, screen.height_in_pixels, 0, screen.root_depth,
            X.InputOutput, X.CopyFromParent, background_pixel=screen.black_pixel,
            override_redirect=True,
        )  # fmt: skip
        self.window.map()
        self.conn.sync()

    def define(self, pattern: Callable[[int, int], bool], hot: tuple[int, int],
               fg: tuple[int, int, int], bg: tuple[int, int, int], size: int = 16) -> None:
        source = self.window.create_pixmap(size, size, 1)
        mask = self.window.create_pixmap(size, size, 1)
        gc = source.create_gc(foreground=0, background=0)
        source.fill_rectangle(gc, 0, 0, size, size)
        mask.fill_rectangle(gc, 0, 0, size, size)
        gc.change(foreground=1)
        for y in range(size):
            for x in range(size):
                if pattern(x, y):
                    source.point(gc, x, y)
                if (x + y) % 5 != 0:  # holes in the mask: transparent pixels
                    mask.point(gc, x, y)
        cursor = source.create_cursor(mask, fg, bg, hot[0], hot[1])
        self.window.change_attributes(cursor=cursor)
        self.window.warp_pointer(40, 40)
        self.conn.sync()

    def paint(self, pixel: int) -> None:
        """Fill the window with ``pixel`` (a change on the screen)."""
        self.window.change_attributes(background_pixel=pixel)
        self.window.clear_area(0, 0, 0, 0)
        self.conn.sync()

    def xfixes(self) -> tuple[int, int, int, int, int, bytes]:
        """(serial, width, height, xhot, yhot, RGBA) of the displayed cursor, from XFIXES."""
        image = self.conn.xfixes_get_cursor_image(self.window)
        rgba = bytearray()
        for word in image.cursor_image:
            alpha = (word >> 24) & 0xFF
            assert alpha in (0, 255), "a bitmap cursor is opaque or transparent"
            rgba += bytes(((word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF, alpha))
        return (image.cursor_serial, image.width, image.height, image.xhot, image.yhot,
                bytes(rgba))

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def display(xvfb_factory: Callable[..., Xvfb]) -> str:
    return xvfb_factory(320, 240).display


@pytest.fixture
def host(host_factory: Callable[..., RunningHost], display: str) -> Iterator[RunningHost]:
    running = host_factory(display)

    async def attach() -> CursorHub:
        hub = CursorHub().start(display)
        setattr(running.server, "cursor", hub)  # noqa: B010 — what rdesk/host/app.py does
        return hub

    hub = running.call(attach())
    yield running
    hub.close()


def _viewer_image(conn: Connection) -> tuple[int, int, int, int, int, bytes]:
    assert conn.cursor is not None
    shape, png = conn.cursor
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGBA"
    rgba = image.tobytes()
    # Fully transparent pixels carry no colour: compare them as zero, as XFIXES gives them.
    cleaned = bytearray(rgba)
    for i in range(0, len(cleaned), 4):
        if cleaned[i + 3] == 0:
            cleaned[i : i + 4] = b"\0\0\0\0"
    return shape.serial, shape.width, shape.height, shape.xhot, shape.yhot, bytes(cleaned)


async def _shows(conn: Connection, serial: int) -> None:
    await conn.wait_for(lambda: conn.cursor is not None and conn.cursor[0].serial == serial, 20)


async def test_viewer_draws_exactly_the_host_cursor(display: str, host: RunningHost) -> None:
    client = await asyncio.to_thread(CursorClient, display)
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
    seen: list[object] = []
    receive = conn._cursors.receive

    def spy(message: object) -> tuple[CursorShape, bytes] | None:
        seen.append(message)
        return receive(message)

    conn._cursors.receive = spy  # type: ignore[method-assign]
    try:
        # The window has no cursor of its own yet: the root's shows, and reaches the viewer.
        root_serial = (await asyncio.to_thread(client.xfixes))[0]
        await _shows(conn, root_serial)
        await asyncio.to_thread(
            client.define, lambda x, y: (x // 4 + y // 4) % 2 == 0, (3, 5),
            (65535, 0, 0), (0, 0, 65535),
        )  # fmt: skip
        first = await asyncio.to_thread(client.xfixes)
        await _shows(conn, first[0])
        assert _viewer_image(conn) == first
        assert first[3:5] == (3, 5)
        # Another cursor, then the first again: the viewer shows it from its cache.
        await asyncio.to_thread(
            client.define, lambda x, y: x == y or x + y == 15, (8, 8), (0, 65535, 0),
            (65535, 65535, 0),
        )  # fmt: skip
        second = await asyncio.to_thread(client.xfixes)
        assert second[0] != first[0]
        await _shows(conn, second[0])
        assert _viewer_image(conn) == second
        await asyncio.to_thread(client.window.change_attributes, cursor=0)  # the root's again
        await asyncio.to_thread(client.conn.sync)
        assert (await asyncio.to_thread(client.xfixes))[0] == root_serial
        await _shows(conn, root_serial)
        assert any(isinstance(m, CursorUse) and m.serial == root_serial for m in seen), (
            "the root cursor was sent first: shown again, it comes from the viewer's cache"
        )
        # The host read (GetCursorImage, PNG) each of the three cursors once: the root's,
        # shown again, came from the watcher's cache by the notify's serial.
        hub = host.server.cursor
        assert hub is not None and hub.watcher is not None and hub.watcher.reads == 3
    finally:
        await conn.close()
        await asyncio.to_thread(client.close)


def test_browser_draws_the_host_cursor_as_a_css_cursor(display: str, host: RunningHost) -> None:
    import base64
    import re
    from pathlib import Path

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed")
    from playwright.sync_api import sync_playwright

    client = CursorClient(display)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu"],
            )
            try:
                page = browser.new_context(ignore_https_errors=True).new_page()
                page.goto(f"https://127.0.0.1:{host.port}/")
                page.fill("#password", PASSWORD)
                page.click("#connect")
                page.wait_for_selector("body[data-state=active]", state="attached")
                client.define(lambda x, y: x % 3 == 0 or y % 5 == 0, (6, 2),
                              (0, 0, 65535), (65535, 32768, 0))
                want = client.xfixes()
                for _ in range(300):
                    if page.evaluate("document.body.dataset.cursor") == str(want[0]):
                        break
                    page.wait_for_timeout(100)
                style = page.evaluate("document.getElementById('screen').style.cursor")
            finally:
                browser.close()
    finally:
        client.close()
    found = re.fullmatch(r'url\("data:image/png;base64,([A-Za-z0-9+/=]+)"\) (\d+) (\d+), default',
                         style)
    assert found, style
    image = Image.open(io.BytesIO(base64.b64decode(found.group(1))))
    rgba = bytearray(image.convert("RGBA").tobytes())
    for i in range(0, len(rgba), 4):
        if rgba[i + 3] == 0:
            rgba[i : i + 4] = b"\0\0\0\0"
    assert (image.size, (int(found.group(2)), int(found.group(3))), bytes(rgba)) == (
        (want[1], want[2]), (want[3], want[4]), want[5]
    )


def test_tk_window_draws_the_host_cursor_at_the_pointer(
    display: str, host: RunningHost, xvfb_factory: Callable[..., Xvfb], tmp_path: Any
) -> None:
    import os
    import re
    import subprocess
    import sys

    from tests.xserver import grab_root, run_xdotool, wait_until

    client = CursorClient(display)
    client.define(lambda x, y: (x + 2 * y) % 7 < 3, (4, 9), (65535, 0, 65535), (0, 65535, 0))
    want = client.xfixes()
    viewer_x = xvfb_factory(800, 600).display
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "tk"), "connect",
         host.url, "--fingerprint", host.fingerprint, "--password-file", str(host.password_file)],
        env=dict(os.environ, DISPLAY=viewer_x), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        found: list[str] = []

        def window() -> bool:
            try:
                out = run_xdotool(viewer_x, "search", "--onlyvisible", "--name", r"\(control\)")
            except Exception:
                return proc.poll() is not None
            found[:] = out.split()[:1]
            return bool(found)

        assert wait_until(window, 30, interval=0.2) and found, proc.stderr
        geometry = run_xdotool(viewer_x, "getwindowgeometry", found[0])
        wx, wy = (int(v) for v in re.search(r"Position: (\d+),(\d+)", geometry).groups())  # type: ignore[union-attr]
        px, py = wx + 120, wy + 100
        width, height, xhot, yhot, rgba = want[1], want[2], want[3], want[4], want[5]

        def sprite_matches() -> bool:
            # No --sync: xdotool's sync waits for the pointer to leave where it was, and a
            # move to where it already is (every poll after the first) can wait out the
            # timeout on a loaded machine; the poll itself waits for the motion's effect.
            run_xdotool(viewer_x, "mousemove", str(px), str(py))
            shot = grab_root(viewer_x, (px - xhot, py - yhot, width, height)).tobytes()
            opaque = [i for i in range(width * height) if rgba[4 * i + 3] == 255]
            return bool(opaque) and all(
                shot[3 * i : 3 * i + 3] == rgba[4 * i : 4 * i + 3] for i in opaque
            )

        assert wait_until(sprite_matches, 30, interval=0.3), "the sprite is not the host's cursor"
    finally:
        proc.terminate()
        proc.wait(15)
        client.close()


async def test_a_cursor_change_waits_for_the_update_round_under_way(
        display: str, host: RunningHost) -> None:
    """Issue 15, "cursor messages never delay screen updates": a cursor that changes while an
    update round is being encoded reaches the viewer after that round's update, not before."""
    client = await asyncio.to_thread(CursorClient, display)
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
    order: list[str] = []  # the host's messages, as the viewer reads them
    receive = conn.session.receive

    def spy(data: str | bytes, now: float) -> Any:
        message = receive(data, now)
        order.append(type(message).__name__)
        return message

    conn.session.receive = spy  # type: ignore[method-assign]
    entered, release = threading.Event(), threading.Event()
    try:
        await conn.wait_exact(20)
        root_serial = (await asyncio.to_thread(client.xfixes))[0]
        await _shows(conn, root_serial)

        async def hold_encoding() -> None:
            link = host.server.viewers[conn.viewer_id].link
            assert link is not None
            encode = link._encode

            async def held(*args: Any, **kwargs: Any) -> Any:
                entered.set()
                await asyncio.to_thread(release.wait, 20)
                return await encode(*args, **kwargs)

            link._encode = held  # type: ignore[method-assign]

        host.call(hold_encoding())
        # A change on the screen: its round stops in the encoder until released.
        await asyncio.to_thread(client.paint, 0xFF8000)
        assert await asyncio.to_thread(entered.wait, 20)
        # Meanwhile the cursor changes, and the host has it.
        await asyncio.to_thread(client.define, lambda x, y: (x + y) % 3 == 0, (1, 1),
                                (65535, 0, 65535), (0, 0, 0))
        serial = (await asyncio.to_thread(client.xfixes))[0]

        async def has_it() -> bool:
            hub = host.server.cursor
            return hub is not None and hub.current is not None and hub.current[0].serial == serial

        mark = len(order)
        for _ in range(200):
            if host.call(has_it()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the host never saw the new cursor")
        await asyncio.sleep(0.3)  # time for a cursor message that did not wait to arrive
        release.set()
        await _shows(conn, serial)
        await conn.wait_exact(20)  # the held round's update has arrived too
        after = order[mark:]
        first = [t for t in after if t in ("Update", "CursorShape")][:1]
        assert first == ["Update"], f"the cursor went before the round under way: {after}"
    finally:
        release.set()
        await conn.close()
        await asyncio.to_thread(client.close)
