"""A real browser scrolling a long page on the host's screen, for bench_fidelity's ``browser``
case: Debian's Chromium, headful on the benchmark's Xvfb and driven by Playwright, showing an
article of headings, paragraphs and photographs (:func:`write_page`) that scrolls itself a
fixed step every frame once told to go (:class:`ScrollingPage`).

Chromium draws the page itself (its own fonts, anti-aliasing, its compositor's timing), so
what the host sees is a real application's scroll, not a copy the benchmark made: text at
sub-pixel positions, images decoded and scaled by the browser, the tab strip and the
scrollbar moving or not as a browser's do.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.photo import photo

__all__ = ["CHROMIUM", "ScrollingPage", "write_page"]

CHROMIUM = Path("/usr/bin/chromium")
#: The flags this machine's Chromium runs with (no sandbox as root, no GPU, nothing fetched).
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
#: The article's vocabulary.
_WORDS = "the host sends each tile once and copies what scrolled remote desktop viewer link frame \
pixel window update screen browser text picture latency bandwidth codec scroll region change \
lossless refresh quality controller estimate queue round trip ack session keyboard pointer \
clipboard monitor file relay secure"
#: Pixels the page scrolls each step, and steps a second (a quick wheel scroll).
STEP_PX = 12
RATE = 30


def write_page(folder: Path, seed: int = 3) -> Path:
    """An HTML article in ``folder`` (with its photographs as PNG files), long enough for
    a minute of scrolling; returns its path."""
    rng = random.Random(seed)
    words = _WORDS.split()
    parts = ["<!doctype html><meta charset=utf-8><title>rdesk scroll</title><style>",
             "body{font:16px/1.5 serif;max-width:900px;margin:20px auto;color:#222;"
             "background:#fdfcf8}h2{font:bold 24px sans-serif;color:#124}"
             "img{display:block;margin:12px 0}p{text-align:justify}</style>"]
    for section in range(40):
        parts.append(f"<h2>{section + 1}. {' '.join(rng.choices(words, k=4)).title()}</h2>")
        for _ in range(rng.randint(2, 4)):
            sentences = (" ".join(rng.choices(words, k=rng.randint(8, 16))).capitalize() + "."
                         for _ in range(rng.randint(4, 8)))
            parts.append(f"<p>{' '.join(sentences)}</p>")
        if section % 3 == 0:
            name = f"photo{section}.png"
            picture = photo(640, 300, seed=seed * 100 + section)
            Image.fromarray(np.asarray(picture)).save(folder / name, compress_level=1)
            parts.append(f'<img src="{name}" width=640 height=300 alt="">')
    page = folder / "page.html"
    page.write_text("".join(parts))
    return page


class ScrollingPage:
    """Chromium on ``display`` showing ``page`` full screen (``size``), scrolled on demand."""

    def __init__(self, display: str, page: Path, size: tuple[int, int]) -> None:
        self.display, self.page, self.size = display, page, size
        self._playwright: Any = None
        self._browser: Any = None
        self._tab: Any = None

    async def open(self) -> None:
        """Start the browser and wait until the page is loaded and painted."""
        from playwright.async_api import async_playwright

        w, h = self.size
        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=False,
            args=[*FLAGS, "--window-position=0,0", f"--window-size={w},{h}"],
            env={**os.environ, "DISPLAY": self.display})
        self._tab = await self._browser.new_page(no_viewport=True)
        await self._tab.goto(self.page.as_uri())
        # Two frames after load: the first paint is on screen.
        await self._tab.evaluate("new Promise(r => requestAnimationFrame(() => "
                                 "requestAnimationFrame(r)))")

    async def toolbar_height(self) -> int:
        """Rows of the browser's own window above the page (tab strip, toolbar)."""
        return int(await self._tab.evaluate("window.outerHeight - window.innerHeight"))

    async def scroll(self, seconds: float) -> float:
        """Scroll :data:`STEP_PX` pixels :data:`RATE` times a second for ``seconds``; returns
        how long after the call's start (by the page's clock) the last step was made."""
        steps = int(seconds * RATE)
        return float(await self._tab.evaluate(
            """([steps, step, every]) => new Promise(resolve => {
                 const start = performance.now(); let done = 0;
                 const timer = setInterval(() => {
                   window.scrollBy({top: step, behavior: 'instant'});
                   if (++done >= steps) {
                     clearInterval(timer); resolve((performance.now() - start) / 1000);
                   }
                 }, every);
               })""", [steps, STEP_PX, 1000 / RATE]))

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()
