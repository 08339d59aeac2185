"""Issue 16 end to end: a real xterm scrolling while the viewer's picture is lossy.

A real host on Xvfb, a real ``xterm`` filling the screen and printing 30 lines a second
(benchmarks/xterm_lines.py), a viewer on the client library through a 2 Mbit/80 ms emulated
link. The xterm is already scrolling when the viewer joins, so its first picture is a large
change sent lossy, and the text never stands still long enough for a lossless refresh while
the lines flow: before issue 16 no COPY was ever made then (copies came only from an exact
picture). Now scrolls are copies of what was sent, lossy or not; once the text stops, the
viewer ends pixel-exact against the X server's own picture. Only events are counted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rdesk.client.connection import connect
from rdesk.protocol.encodings import Encoding
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.linkproxy import LinkProxy
from tests.xserver import Xvfb, assert_images_equal, grab_root, wait_until

MBIT = 1_000_000
LINES = Path(__file__).resolve().parents[2] / "benchmarks" / "xterm_lines.py"


async def test_xterm_scrolling_on_a_lossy_picture_is_sent_as_copies_and_ends_exact(
        xvfb_factory: Callable[..., Xvfb], host_factory: Callable[..., RunningHost],
        tmp_path: Path) -> None:
    xvfb = xvfb_factory(640, 480)
    host = host_factory(xvfb.display)
    # 6x13 "fixed" font: 104 columns by 36 lines fill 640x480 but for the borders.
    xterm = subprocess.Popen(
        ["xterm", "-geometry", "104x36+0+0", "-e", sys.executable, str(LINES), str(tmp_path),
         "--seconds", "6"],
        env={"DISPLAY": xvfb.display, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert await asyncio.to_thread(wait_until, (tmp_path / "ready").exists, 60)
        (tmp_path / "go").write_text("go\n")  # the text flows before the viewer joins
        async with LinkProxy(host.port, rate=2 * MBIT, delay=0.04, lifetime=120) as proxy:
            conn = await connect(f"wss://127.0.0.1:{proxy.port}", PASSWORD, known_hosts=None,
                                 pinned=host.fingerprint)
            counts = {"jpeg": 0, "copies_while_lossy": 0}
            lossy = False  # the viewer holds JPEG pixels no exact update has replaced yet

            def on_update(_: object) -> None:
                nonlocal lossy
                update = conn.stats.last_update
                assert update is not None
                if lossy:
                    counts["copies_while_lossy"] += sum(
                        r.encoding is Encoding.COPY for r in update.rects)
                jpeg = sum(r.encoding is Encoding.JPEG for r in update.rects)
                counts["jpeg"] += jpeg
                lossy = not update.exact and (lossy or bool(jpeg))

            conn.on_update(on_update)
            try:
                assert await asyncio.to_thread(wait_until, (tmp_path / "stopped").exists, 90)
                await conn.wait_exact(60)
                await asyncio.sleep(0.5)  # the xterm is idle: its screen is the truth
                assert_images_equal(conn.framebuffer.image, grab_root(xvfb.display))
            finally:
                await conn.close()
        assert counts["jpeg"] > 0, counts  # the first picture went lossy
        assert counts["copies_while_lossy"] >= 3, counts
    finally:
        xterm.kill()
        xterm.wait()
