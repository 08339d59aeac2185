"""Viewers that take video join and leave a real host again and again during a photo pan, and
leave nothing behind: no encoder, descriptor, thread outside a pool or task (issue 16's
shared encoders under churn, in the manner of test_reliability_cycles.py).

``rdesk host`` runs as its own process on Xvfb while benchmarks/xload.py pans a photo-like
picture; each cycle a Python viewer declaring H.264 logs in, waits until its stream has
started (H264 rectangles received) and closes, sometimes mid-stream with a second viewer in
the same group. The host's console ``status`` line gives its live encoders (``video=``), tasks
and pooled threads; ``/proc`` its descriptors, threads and memory. Counts only: no time is
asserted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rdesk.client.connection import Connection, connect
from tests.e2e.test_video import Recorder, pan, picture, screen
from tests.hostproc import PASSWORD, HostProcess, store_test_password
from tests.xserver import Xvfb

pytest.importorskip("av", reason="PyAV is not installed (pip install 'rdesk[host]')")

__all__ = ["picture", "screen"]  # fixtures, used by name

#: Cycles measured after the warm-up; every third has a second viewer in the same group.
CYCLES = 12
WARM_UP = 3
#: H264 rectangles a viewer must get before it leaves: its stream has started.
UNITS = 3
#: What must come back to its baseline once the host has finished closing.
SETTLING = ("fds", "unpooled", "tasks", "viewers", "video")
#: Resident memory may grow this much over the cycles. Viewers joining during a pan fill the
#: host's tile cache (EncodeCache: at most 32 MiB of payload) with first pictures of frames
#: that differ every time, and the allocator keeps some: measured +14-20 MiB over 12 cycles,
#: level at +45-50 MiB from about 75 cycles on (200 cycles, with or without video). One 640x480
#: x264 encoder left behind per cycle would add 9 MiB a cycle, over 100 MiB here.
RSS_SLACK_KIB = 48 * 1024


@pytest.fixture
def long_pan(screen: Xvfb, picture: tuple[Path, np.ndarray]) -> Iterator[subprocess.Popen[str]]:
    """A pan long enough for every cycle on a slow machine; killed once the test is done."""
    yield from pan(screen, picture, 120.0)


async def _settled(host: HostProcess, baseline: dict[str, int]) -> dict[str, int]:
    """The figures once the host has finished closing: polled, at most 50 times."""
    figures = await asyncio.to_thread(host.figures)
    for _ in range(50):
        if all(figures[k] <= baseline[k] for k in SETTLING):
            break
        await asyncio.sleep(0.2)
        figures = await asyncio.to_thread(host.figures)
    return figures


async def _viewer(host: HostProcess) -> tuple[Connection, Recorder]:
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint,
                         video=True)
    return conn, Recorder(conn)


async def _until_units(seen: list[Recorder], pan: subprocess.Popen[str]) -> None:
    """Until every viewer has its stream (``UNITS`` H264 rectangles), while the pan runs."""
    for _ in range(3000):
        if min(s.video_rects for s in seen) >= UNITS:
            return
        assert pan.poll() is None, "the pan ended before every cycle was done"
        await asyncio.sleep(0.01)
    raise AssertionError(f"no stream started: {[(s.video_rects, s.tile_rects) for s in seen]}")


def _logins(cycles: int) -> int:
    """The logins ``cycles`` cycles make (:func:`_cycles`)."""
    return cycles + sum(cycle % 3 == 2 for cycle in range(cycles))


async def _cycles(host: HostProcess, count: int, pan: subprocess.Popen[str]) -> int:
    """``count`` cycles; every third, two viewers share the stream and the first leaves
    mid-stream while the second still watches. The cycles whose viewers all got video."""
    done = 0
    for cycle in range(count):
        viewers = [await _viewer(host) for _ in range(2 if cycle % 3 == 2 else 1)]
        try:
            await _until_units([seen for _, seen in viewers], pan)
            done += 1
        finally:  # in order: the first leaves while the second still takes the stream
            for conn, _ in viewers:
                await conn.close()
    return done


@pytest.mark.timeout(300)
async def test_video_viewers_coming_and_going_leave_no_encoder_or_descriptor(
    screen: Xvfb, long_pan: subprocess.Popen[str], tmp_path: Path
) -> None:
    config = tmp_path / "host-config"
    store_test_password(config)
    audit = tmp_path / "audit.jsonl"
    host = await asyncio.to_thread(
        HostProcess.start, screen.display, tmp_path, "--audit-log", str(audit),
        config_dir=config, password=None, stdin=subprocess.PIPE)
    try:
        assert long_pan.stdin is not None
        long_pan.stdin.write("go\n")
        long_pan.stdin.flush()
        assert await _cycles(host, WARM_UP, long_pan) == WARM_UP
        # The baseline is taken once the warm-up's last viewer is gone from the host (no
        # viewer, no encoder); a bound on nothing would take it while that viewer still closes.
        at_rest = {**{k: 10**6 for k in SETTLING}, "viewers": 0, "video": 0}
        baseline = await _settled(host, at_rest)
        assert baseline["viewers"] == baseline["video"] == 0, baseline
        assert await _cycles(host, CYCLES, long_pan) == CYCLES
        after = await _settled(host, baseline)
        assert long_pan.poll() is None, "the pan ended before the last cycle"
    finally:
        await asyncio.to_thread(host.stop)
    assert host.proc.returncode == 0, host.lines[-20:]
    # Every stream's encoder is gone with its viewers; nothing else grew.
    for key in SETTLING:
        assert after[key] <= baseline[key], (key, baseline, after)
    assert after["threads"] - baseline["threads"] <= after["pooled"] - baseline["pooled"], \
        (baseline, after)
    grown = after["rss_kib"] - baseline["rss_kib"]
    assert grown <= RSS_SLACK_KIB, f"{grown >> 10} MiB more after {CYCLES} cycles"
    kinds = Counter(json.loads(line)["kind"] for line in audit.read_text().splitlines())
    logins = sum(_logins(n) for n in (WARM_UP, CYCLES))
    assert kinds["auth_success"] == kinds["disconnect"] == logins, kinds
    assert kinds["protocol_error"] == 0, kinds
