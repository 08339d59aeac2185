"""Two viewers of one moving region share one encoder (issue 16: "viewers at similar rates
share an encoder"): a real host on Xvfb, a photo-like picture panned by a real X client
(benchmarks/xload.py photo), two Python viewers over real TLS on loopback (similar rates).

Both get the region as H264 rectangles and decode it within the PSNR bound of the frames the X
client drew, both end pixel-exact, and the host encodes far fewer frames than the two received
together: one encode a frame once they share (the second viewer's stream joins the first's
group at its kept key unit, or at the next key unit a join may force), where without sharing
it encoded each viewer's frames separately (the check fails then: encodes = frames received).
A viewer that disconnects mid-stream leaves its group.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rdesk.client.connection import Connection, connect
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.e2e.test_video import (
    PSNR_BOUND,
    Recorder,
    W,
    pan,
    panning,
    picture,
    psnr,
    screen,
)
from tests.xserver import Xvfb, assert_images_equal, grab_root

pytest.importorskip("av", reason="PyAV is not installed (pip install 'rdesk[host]')")


@pytest.fixture
def long_panning(screen: Xvfb, picture: tuple[Path, np.ndarray]
                 ) -> Iterator[subprocess.Popen[str]]:
    """A pan of 10 s: long enough to leave in the middle of it on a slow machine."""
    yield from pan(screen, picture, 10.0)

__all__ = ["panning", "picture", "screen"]  # fixtures, used by name


def scores(seen: Recorder, frames: list[tuple[float, int]], rgb: np.ndarray) -> list[float]:
    """Each sampled picture against the best of the frames drawn in the 200 ms before it."""
    times = np.array([t for t, _ in frames])
    out = []
    for stamp, shown in seen.samples:
        lo, hi = np.searchsorted(times, [stamp - 0.2, stamp], side="right")
        out.append(max(psnr(shown, rgb[::4, off : off + W : 4])
                       for _, off in frames[max(0, lo - 1) : max(1, hi)]))
    return out


async def start(conns: list[Connection], proc: subprocess.Popen[str]) -> list[Recorder]:
    """Once every viewer is exact on the still screen: start the pan, recording each."""
    for conn in conns:
        await conn.wait_exact(60)
    seen = [Recorder(conn) for conn in conns]
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return seen


async def _counts(host: RunningHost) -> tuple[int, list[int]]:
    """The host's encodes, and the units each viewer's streams were given."""
    links = [v.link for v in host.server.viewers.values() if v.link is not None]
    return host.server.video_encoders.encodes, [
        link.video.frames if link.video is not None else 0 for link in links]


async def test_two_viewers_one_encode_per_frame(screen: Xvfb, host_factory: object,
                                                panning: subprocess.Popen[str],
                                                picture: tuple[Path, np.ndarray]) -> None:
    host: RunningHost = host_factory(screen.display)  # type: ignore[operator]
    conns: list[Connection] = []
    try:
        for _ in range(2):
            conns.append(await connect(host.url, PASSWORD, known_hosts=None,
                                       pinned=host.fingerprint, video=True))
        seen = await start(conns, panning)
        assert panning.stdout is not None
        out = await asyncio.to_thread(panning.stdout.read)
        await asyncio.to_thread(panning.wait, 30)
        frames = next(json.loads(line[7:]) for line in out.splitlines()
                      if line.startswith("frames "))
        encodes, given = host.call(_counts(host))
        for conn, got in zip(conns, seen, strict=True):
            assert got.video_rects >= 20, (got.video_rects, got.tile_rects)
            picture_scores = scores(got, frames, picture[1])
            assert len(picture_scores) >= 20
            assert float(np.median(picture_scores)) >= PSNR_BOUND, sorted(picture_scores)
            assert conn.framebuffer.video is not None and not conn.framebuffer.video.refused
        # Shared: the host encoded once per frame, not once per viewer and frame.
        assert len(given) == 2 and min(given) >= 20, given
        assert encodes <= 0.75 * sum(given), (encodes, given)
        for conn in conns:  # motion stopped: the lossless refresh makes both exact
            await conn.wait_exact(30)
            assert_images_equal(conn.framebuffer.image, grab_root(screen.display))
    finally:
        for conn in conns:
            await conn.close()
    # The viewers gone, their streams left the shared encoders: no group (or encoder) stays.
    for _ in range(200):
        if host.call(_left(host)):
            break
        await asyncio.sleep(0.05)
    assert host.call(_left(host)), host.server.video_encoders.groups


async def _left(host: RunningHost) -> bool:
    return not host.server.viewers and host.server.video_encoders.groups == 0


async def _members(host: RunningHost) -> tuple[int, int]:
    return len(host.server.viewers), host.server.video_encoders.members


async def test_a_viewer_leaving_mid_stream_leaves_its_group(
        screen: Xvfb, host_factory: object, long_panning: subprocess.Popen[str]) -> None:
    """A viewer that disconnects while its stream runs takes its member out of the group (the
    other viewer's stream goes on); nothing of it stays in the screen's shared encoders."""
    host: RunningHost = host_factory(screen.display)  # type: ignore[operator]
    conns = [await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint,
                           video=True) for _ in range(2)]
    try:
        seen = await start(conns, long_panning)
        while long_panning.poll() is None:  # until both take video (a stream each, a group)
            if min(s.video_rects for s in seen) >= 5 and host.call(_members(host)) == (2, 2):
                break
            await asyncio.sleep(0.01)
        assert host.call(_members(host)) == (2, 2), [s.video_rects for s in seen]
        await conns[0].close()
        for _ in range(300):
            if host.call(_members(host))[0] == 1:
                break
            await asyncio.sleep(0.01)
        viewers, members = host.call(_members(host))
        still = long_panning.poll() is None  # the pan (and the other stream) still running
        assert viewers == 1 and (members == 1 or not still), (viewers, members, still)
        before = seen[1].video_rects
        await asyncio.to_thread(long_panning.wait, 30)
        assert seen[1].video_rects > before or not still
        await conns[1].wait_exact(30)
    finally:
        for conn in conns:
            await conn.close()
