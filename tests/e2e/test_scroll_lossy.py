"""Issue 16 end to end: a real xterm scrolling when the viewer joins it.

A real host on Xvfb, a real ``xterm`` filling the screen and printing 30 lines a second
(benchmarks/xterm_lines.py), a viewer on the client library through a 2 Mbit/80 ms emulated
link. The xterm is already scrolling when the viewer joins, so its first picture is a large
change, and the text never stands still long enough for a lossless refresh while the lines
flow. Only events are counted.

- Text in many colours, antialiased, is not flat: the first picture goes lossy (JPEG). Before
  issue 16 no COPY was ever made then (copies came only from an exact picture); now scrolls
  are copies of what was sent, lossy or not.
- A plain terminal's text (a bitmap font, two colours) is flat: its first picture goes
  lossless, being smaller so than as JPEG, and the viewer never holds a lossy pixel.

Either way the viewer ends pixel-exact against the X server's own picture once the text stops.
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


async def _join_scrolling_xterm(xvfb: Xvfb, host: RunningHost, tmp_path: Path,
                                xterm_args: list[str], lines_args: list[str]
                                ) -> dict[str, int]:
    """Start the xterm, let it scroll, join through the link, count, end exact; the counts:
    JPEG rects, COPY rects, and COPY rects while the viewer held lossy pixels."""
    xterm = subprocess.Popen(
        ["xterm", *xterm_args, "-e", sys.executable, str(LINES), str(tmp_path), "--seconds",
         "6", *lines_args],
        env={"DISPLAY": xvfb.display, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert await asyncio.to_thread(wait_until, (tmp_path / "ready").exists, 60)
        (tmp_path / "go").write_text("go\n")  # the text flows before the viewer joins
        async with LinkProxy(host.port, rate=2 * MBIT, delay=0.04, lifetime=120) as proxy:
            conn = await connect(f"wss://127.0.0.1:{proxy.port}", PASSWORD, known_hosts=None,
                                 pinned=host.fingerprint)
            counts = {"jpeg": 0, "copies": 0, "copies_while_lossy": 0}
            lossy = False  # the viewer holds JPEG pixels no exact update has replaced yet

            def on_update(_: object) -> None:
                nonlocal lossy
                update = conn.stats.last_update
                assert update is not None
                copies = sum(r.encoding is Encoding.COPY for r in update.rects)
                counts["copies"] += copies
                if lossy:
                    counts["copies_while_lossy"] += copies
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
        return counts
    finally:
        xterm.kill()
        xterm.wait()


async def test_xterm_scrolling_on_a_lossy_picture_is_sent_as_copies_and_ends_exact(
        xvfb_factory: Callable[..., Xvfb], host_factory: Callable[..., RunningHost],
        tmp_path: Path) -> None:
    xvfb = xvfb_factory(640, 480)
    host = host_factory(xvfb.display)
    # DejaVu Sans Mono 9 (antialiased) in 256 colours: hundreds of colours, not flat.
    counts = await _join_scrolling_xterm(
        xvfb, host, tmp_path, ["-fa", "DejaVu Sans Mono", "-fs", "9", "-geometry", "92x30+0+0"],
        ["--colour"])
    assert counts["jpeg"] > 0, counts  # the first picture went lossy
    assert counts["copies_while_lossy"] >= 3, counts


async def test_a_plain_terminal_joined_while_scrolling_is_never_lossy(
        xvfb_factory: Callable[..., Xvfb], host_factory: Callable[..., RunningHost],
        tmp_path: Path) -> None:
    xvfb = xvfb_factory(640, 480)
    host = host_factory(xvfb.display)
    # 6x13 "fixed" font: 104 columns by 36 lines fill 640x480 but for the borders.
    counts = await _join_scrolling_xterm(xvfb, host, tmp_path, ["-geometry", "104x36+0+0"], [])
    assert counts["jpeg"] == 0, counts  # flat text: lossless from the first picture
    assert counts["copies"] >= 3, counts
