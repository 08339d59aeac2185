"""Issue 7 end to end: bandwidth adaptation through an emulated link (tests/linkproxy.py).

A real host on Xvfb shows continuous motion (the Painter repainting whole-screen patterns from a
thread); a viewer on the client library watches it through the shaping proxy. Assertions are on
the host's own estimator and controller figures and on bytes in flight — never on wall-clock
durations (the machine is shared). Time limits below are only deadlines for waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from rdesk.client.connection import Connection, connect
from rdesk.host.serve.viewer import ViewerLink
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.linkproxy import LinkProxy
from tests.xserver import Painter, Xvfb, assert_images_equal, grab_root

MBIT = 1_000_000


@contextmanager
def motion(painter: Painter, limit: int = 400) -> Iterator[None]:
    """Repaint the whole screen in a loop (at most ``limit`` frames) until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        for seed in range(100, 100 + limit):
            if stop.is_set():
                return
            painter.image(seed)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


async def exact_with_screen(conn: Connection, display: str, timeout: float) -> None:
    """Wait until the viewer is exact, then until it shows the screen itself (at most 10 s
    more), and assert that it does. An exact update can be of the frame before the motion's
    last paint (the host's exactness is of its last grab): 86-88 % of pixels one paint
    behind, once in a CI run each for the link-cut and the prefs test; that paint's own
    exact update follows."""
    await conn.wait_exact(timeout)
    for _ in range(100):
        if conn.framebuffer.image.convert("RGB").tobytes() == grab_root(display).tobytes():
            break
        await asyncio.sleep(0.1)
    assert_images_equal(conn.framebuffer.image, grab_root(display))


def figures(host: RunningHost) -> dict[str, Any]:
    """The (only) viewer link's controller figures and bytes in flight, read on the host loop."""

    async def read() -> dict[str, Any]:
        link = next(iter(host.server.viewers.values())).link
        assert isinstance(link, ViewerLink)
        now = time.monotonic()
        out: dict[str, Any] = link.controller.snapshot(now)
        out["high"] = link.controller.high
        out["in_flight"] = link.session.flow.bytes
        out["in_flight_count"] = link.session.flow.count
        out["max_quality"] = link.controller.caps.max_quality
        return out

    return host.call(read())


def wait_hold(host: RunningHost, display: str, deadline: float = 30.0) -> dict[str, Any]:
    """Paint small changes until the host's (only) viewer link was sent ``ack_hold`` and its
    estimator holds a hold time above 0 from the viewer's acks; its figures then. Fails after
    ``deadline`` seconds (a deadline for waiting, not a timing assertion)."""

    async def read() -> dict[str, Any]:
        link = next(iter(host.server.viewers.values())).link
        assert isinstance(link, ViewerLink)
        out: dict[str, Any] = link.controller.snapshot(time.monotonic())
        out["hold_acks"] = link.session.hold_acks
        return out

    seen: dict[str, Any] = {}
    end = time.monotonic() + deadline
    with Painter(display, seed=3) as painter:
        for i in itertools.count():
            seen = host.call(read())
            if seen["hold_acks"] and seen["hold"] > 0:
                return seen
            assert time.monotonic() < end, seen
            painter.rect(10 + 20 * (i % 10), 10, 16, 16, f"{(40 * i) % 256:02x}8020")
            time.sleep(0.1)
    raise AssertionError("unreachable")


async def poll(host: RunningHost, until: Callable[[dict[str, Any]], bool],
               deadline: float) -> tuple[bool, list[dict[str, Any]]]:
    """Sample the figures every 100 ms until ``until`` holds or ``deadline`` s pass."""
    seen = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        f = await asyncio.to_thread(figures, host)
        seen.append(f)
        if until(f):
            return True, seen
        await asyncio.sleep(0.1)
    return False, seen


async def viewer_via(proxy: LinkProxy, host: RunningHost) -> Connection:
    # Tiles only: these tests follow the JPEG quality and scale the controller picks; a video
    # stream's rate (from the same level) is tests/e2e/test_video.py's and the benchmarks'.
    return await connect(f"wss://127.0.0.1:{proxy.port}", PASSWORD, known_hosts=None,
                         pinned=host.fingerprint, video=False)


async def test_link_cut_and_recovery(xvfb_factory: Callable[..., Xvfb],
                                     host_factory: Callable[..., RunningHost]) -> None:
    xvfb = xvfb_factory(480, 320)
    host = host_factory(xvfb.display, quality=80)
    with Painter(xvfb.display, seed=1) as painter:
        async with LinkProxy(host.port, rate=50 * MBIT, delay=0.005, lifetime=120) as proxy:
            conn = await viewer_via(proxy, host)
            try:
                with motion(painter):
                    # Fast link: the picture is at (or climbs back to) full quality and scale.
                    ok, seen = await poll(
                        host, lambda f: f["quality"] == 80 and f["scale"] == 1.0, 8)
                    assert ok, seen[-3:]
                    proxy.set(rate=1 * MBIT)
                    # Cut to 1 Mbit/s: the controller lowers the picture ...
                    ok, seen = await poll(
                        host, lambda f: f["scale"] < 1.0 or f["quality"] < 60, 10)
                    assert ok, seen[-3:]
                    # ... and the queue drains back near the base RTT, with bounded bytes in
                    # flight, while the motion goes on.
                    ok, seen = await poll(
                        host, lambda f: f["queue_delay"] <= 2 * f["high"]
                        and f["in_flight"] <= max(f["window_bytes"], 64 * 1024), 10)
                    assert ok, seen[-3:]
                    assert figures(host)["window_bytes"] < 1 * MBIT / 8
                # The screen goes still: the viewer becomes pixel-exact even over 1 Mbit/s.
                await exact_with_screen(conn, xvfb.display, 25)
                assert_images_equal(conn.framebuffer.image, painter.expected())
                # The link recovers: quality climbs back to the host's maximum.
                proxy.set(rate=50 * MBIT)
                with motion(painter):
                    # 20 s: the climb is one level per good window; on a busy 2-core machine
                    # (late acks read as queue) it failed to finish in 10 s in 1 of 9 runs,
                    # before and after issue 16's rate work alike.
                    ok, seen = await poll(
                        host, lambda f: f["quality"] == 80 and f["scale"] == 1.0, 20)
                    assert ok, seen[-3:]
            finally:
                await conn.close()


async def test_viewer_prefs_cap_quality_and_rate(xvfb_factory: Callable[..., Xvfb],
                                                host_factory: Callable[..., RunningHost]) -> None:
    xvfb = xvfb_factory(320, 240)
    host = host_factory(xvfb.display, quality=80, max_bandwidth=20 * MBIT)
    with Painter(xvfb.display, seed=1) as painter:
        async with LinkProxy(host.port, rate=50 * MBIT, delay=0.002, lifetime=60) as proxy:
            conn = await viewer_via(proxy, host)
            try:
                await conn.prefs(quality=40, max_fps=10, max_bandwidth=100 * MBIT)
                with motion(painter, limit=200):
                    ok, seen = await poll(host, lambda f: f["quality"] == 40, 8)
                    assert ok, seen[-3:]
                    f = figures(host)
                    assert f["fps"] <= 10
                    assert f["max_quality"] == 40

                    async def caps() -> tuple[int, float, float | None]:
                        link = next(iter(host.server.viewers.values())).link
                        assert link is not None
                        c = link.controller.caps
                        return c.max_quality, c.max_fps, c.max_bandwidth

                    # The host's own bandwidth cap is stricter than the viewer's: it wins.
                    assert host.call(caps()) == (40, 10, 20 * MBIT)
                await exact_with_screen(conn, xvfb.display, 20)
            finally:
                await conn.close()


def test_watch_prints_json_lines(xvfb: Xvfb, host: RunningHost,
                                 rdesk_cli: Callable[..., Any]) -> None:
    import json

    with Painter(xvfb.display, seed=3) as painter, motion(painter, limit=100):
        result = rdesk_cli("watch", host.url, *host.viewer_args(), "--duration", "2.5", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) >= 2, result.stdout
    assert {"updates_per_s", "bytes_per_s", "rtt_ms", "queue_ms", "quality", "scale"} <= set(
        lines[0]
    )
    assert sum(line["updates_per_s"] for line in lines) > 0
    assert any(line["rtt_ms"] is not None for line in lines)
    qualities = [line["quality"] for line in lines if line["quality"] is not None]
    assert qualities and all(30 <= q <= 80 for q in qualities), lines


async def test_the_viewers_hold_time_reaches_the_hosts_estimator(
        xvfb: Xvfb, host: RunningHost) -> None:
    """The Python viewer offers ``hold``; the host answers ``ack_hold`` and from then on reads
    each ack's hold time (the viewer's decode and paint) into its estimator, whose base RTT is
    then net of it while the in-flight window's round trip keeps it."""
    pytest.importorskip("av", reason="the viewer offers hold with its H.264 decoder (PyAV)")
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
    try:
        await conn.wait_exact(30)
        assert conn.session.hold_acks  # the host's ack_hold arrived
        seen = await asyncio.to_thread(wait_hold, host, xvfb.display)
        assert seen["base_rtt"] is not None and seen["base_rtt"] >= 0
    finally:
        await conn.close()
