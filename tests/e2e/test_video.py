"""Video regions end to end (issue 16): a real host on Xvfb, a photo-like picture panned by a
real X client (benchmarks/xload.py photo), the Python viewer over real TLS.

- A viewer that declares ``h264`` gets the moving screen as H264 rectangles; its picture,
  scored against the frames the X client drew, stays within a PSNR bound while it moves; once
  the motion stops it ends (``video_end``) and the viewer becomes pixel-exact.
- A viewer that declares no video (``video=False``, ``rdesk ... --no-video``) gets tiles only.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.photo import photo
from rdesk.client.connection import Connection, connect
from rdesk.host.video.streams import VideoStreams
from rdesk.protocol.encodings import Encoding
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb, assert_images_equal, grab_root

pytest.importorskip("av", reason="PyAV is not installed (pip install 'rdesk[host]')")

ROOT = Path(__file__).resolve().parents[2]
W, H = 640, 480
#: The worst PSNR (dB) a video picture may have against the frame it was cut from. x264 at
#: this size and rate is measured at 30-40 dB on the grainy photo; a broken stream (wrong
#: position, stale or garbled frames) scores under 15.
PSNR_BOUND = 24.0


class Recorder:
    """What a viewer received: H264 rects, other rects, and (timestamp, picture) samples."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.video_rects = 0
        self.tile_rects = 0
        self.samples: list[tuple[float, np.ndarray]] = []
        conn.on_update(self._on_update)

    def _on_update(self, _: object) -> None:
        update = self.conn.stats.last_update
        if update is None:
            return
        video = sum(1 for r in update.rects if r.encoding is Encoding.H264)
        self.video_rects += video
        self.tile_rects += len(update.rects) - video
        if video and len(self.samples) < 400:
            picture = np.asarray(self.conn.framebuffer.image)[::4, ::4].copy()
            self.samples.append((update.timestamp_us / 1e6, picture))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.fixture
def screen(xvfb_factory: object) -> Xvfb:
    return xvfb_factory(W, H)  # type: ignore[operator, no-any-return]


@pytest.fixture
def picture(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rgb = photo(2 * W, H, seed=5)
    path = tmp_path / "photo.npy"
    np.save(path, rgb)
    return path, rgb


@pytest.fixture
def panning(screen: Xvfb, picture: tuple[Path, np.ndarray]) -> Iterator[subprocess.Popen[str]]:
    """benchmarks/xload.py photo on the screen, ready: write a line to its stdin to start."""
    yield from pan(screen, picture, 4.0)


def pan(screen: Xvfb, picture: tuple[Path, np.ndarray], seconds: float
        ) -> Iterator[subprocess.Popen[str]]:
    """The ``panning`` fixture's body, for a pan of ``seconds``."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "xload.py"), "photo", "--seconds",
         f"{seconds:g}", "--fps", "30", "--picture", str(picture[0])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, DISPLAY=screen.display),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


async def _pan_watched(display: str, host_factory: object, proc: subprocess.Popen[str],
                       video: bool) -> tuple[Connection, Recorder, list[tuple[float, int]]]:
    """A host on ``display`` and a viewer (declaring video or not) exact on the still screen;
    then the pan runs to its end, recorded: the open connection, what it got, what was drawn."""
    host: RunningHost = host_factory(display)  # type: ignore[operator]
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint,
                         video=video)
    try:
        await conn.wait_exact(60)
        seen = Recorder(conn)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = await asyncio.to_thread(proc.stdout.read)
        await asyncio.to_thread(proc.wait, 30)
    except BaseException:
        await conn.close()
        raise
    frames = next(json.loads(line[7:]) for line in out.splitlines() if line.startswith("frames "))
    conn.host = host  # type: ignore[attr-defined]  # for the checks inside the host
    return conn, seen, frames


async def test_motion_goes_video_then_exact(screen: Xvfb, host_factory: object,
                                            panning: subprocess.Popen[str],
                                            picture: tuple[Path, np.ndarray]) -> None:
    conn, seen, frames = await _pan_watched(screen.display, host_factory, panning, video=True)
    try:
        assert seen.video_rects >= 20, (seen.video_rects, seen.tile_rects)
        # Each sampled picture against the frames drawn in the 200 ms before its capture
        # stamp (one of them was captured): the best match counts.
        times = np.array([t for t, _ in frames])
        rgb = picture[1]
        scores = []
        for stamp, shown in seen.samples:
            lo, hi = np.searchsorted(times, [stamp - 0.2, stamp], side="right")
            scores.append(max(psnr(shown, rgb[::4, off : off + W : 4])
                              for _, off in frames[max(0, lo - 1) : max(1, hi)]))
        assert len(scores) >= 20
        assert float(np.median(scores)) >= PSNR_BOUND, sorted(scores)[:: max(1, len(scores) // 10)]
        # Motion stopped: the stream ends and the lossless refresh makes the viewer exact.
        await conn.wait_exact(30)
        assert_images_equal(conn.framebuffer.image, grab_root(screen.display))
        host: RunningHost = conn.host  # type: ignore[attr-defined]
        (streams,) = host.call(_streams(host))
        assert streams is not None and not streams.active and streams.keys >= 1
        assert conn.framebuffer.video is not None and conn.framebuffer.video.decoded >= 20
        assert not conn.framebuffer.video.refused
    finally:
        await conn.close()


async def _streams(host: RunningHost) -> list[VideoStreams | None]:
    return [v.link.video for v in host.server.viewers.values() if v.link is not None]


async def test_viewer_without_video_gets_tiles_only(screen: Xvfb, host_factory: object,
                                                    panning: subprocess.Popen[str]) -> None:
    conn, seen, _ = await _pan_watched(screen.display, host_factory, panning, video=False)
    try:
        assert seen.tile_rects >= 20
        assert seen.video_rects == 0
        assert conn.framebuffer.video is None
        await conn.wait_exact(30)
        assert_images_equal(conn.framebuffer.image, grab_root(screen.display))
    finally:
        await conn.close()
