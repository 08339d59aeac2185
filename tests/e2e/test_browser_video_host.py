"""Issue 16 end to end in the browser: a real host on Xvfb, a photo-like picture panned by a
real X client (benchmarks/xload.py photo), the page in Debian's headless Chromium declaring
``h264`` and decoding the host's H264 rectangles with WebCodecs.

While the picture moves the page's canvas stays within a PSNR bound of a frame the X client
drew; once it stops, the host's lossless refresh makes the canvas equal the X screen.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e import test_browser as pages
from tests.e2e.conftest import RunningHost
from tests.e2e.test_browser import (
    CHROMIUM,
    _canvas_image,
    _login,
    _wait_active,
    _wait_canvas_equals,
)
from tests.e2e.test_video import W, panning, picture, screen
from tests.h264units import psnr
from tests.xserver import Xvfb

pytest.importorskip("av", reason="PyAV is not installed (pip install 'rdesk[host]')")

# The browser fixtures of test_browser.py; the panned photo of test_video.py (the Python
# viewer's end-to-end test: the same screen, picture and X client).
browser = pages.browser
page_and_log = pages.page_and_log
page = pages.page
__all__ = ["panning", "picture", "screen"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing")

#: The bound the Python viewer's test uses (tests/e2e/test_video.py): x264 on the grainy photo
#: measures 30-40 dB; a stream drawn at the wrong place, stale or garbled scores under 15.
PSNR_BOUND = 24.0


def test_the_page_decodes_the_hosts_video_then_is_exact(
    screen: Xvfb, host_factory: Callable[..., RunningHost], panning: subprocess.Popen[str],
    picture: tuple[Path, np.ndarray], page_and_log: tuple[Any, pages.PageLog],
) -> None:
    page, log = page_and_log
    host = host_factory(screen.display)
    _login(page, host)
    _wait_active(page)
    assert page.get_attribute("body", "data-video") == "h264"
    _wait_canvas_equals(page, screen.display)  # the still screen first, losslessly
    assert panning.stdin is not None and panning.stdout is not None
    panning.stdin.write("go\n")
    panning.stdin.flush()
    samples = []
    while panning.poll() is None and len(samples) < 12:
        page.wait_for_timeout(250)
        if int(page.get_attribute("body", "data-video-rects") or 0):
            samples.append(np.asarray(_canvas_image(page))[::2, ::2].copy())
    out = panning.stdout.read()
    panning.wait(30)
    frames = next(json.loads(line[7:]) for line in out.splitlines() if line.startswith("frames "))
    video_rects = int(page.get_attribute("body", "data-video-rects") or 0)
    assert video_rects >= 20, video_rects
    # Each canvas sample against every frame the X client drew: the best match counts.
    rgb = picture[1]
    offsets = sorted({off for _, off in frames})
    scores = [max(psnr(shown, rgb[::2, off:off + W:2]) for off in offsets) for shown in samples]
    assert len(scores) >= 4, scores
    assert float(np.median(scores)) >= PSNR_BOUND, scores
    # Motion stopped: the stream ends and the lossless refresh makes the page exact.
    _wait_canvas_equals(page, screen.display)
    assert page.get_attribute("body", "data-state") == "active"
    assert not log.errors()
