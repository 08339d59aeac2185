"""Benchmark input-to-pixels latency on loopback at 1920x1080.

A real host (in this process, on its own event-loop thread, real TLS websockets on 127.0.0.1,
real XTest injection through pynput) shares an Xvfb screen on which the test recorder window
(``tests/xclients/recorder.py --flash``) fills itself with the next colour of a cycle on every
KeyPress. A viewer (the client library, in this process) sends a key press and measures the
time until an update arrives whose pixels inside the window show the new colour.

Each key is timed in stages, all on this process's monotonic clock:

- ``x``: key sent -> the recorder reported the KeyPress after painting and XSync
  (websocket + TLS to the host, XTest injection, X server, the client's fill; includes the
  recorder's stdout pipe, so it is an upper bound);
- ``capture``: -> the host's grab that saw the change finished (damage wake-up, grab, diff);
- ``deliver``: -> the viewer applied the update, split into ``wake`` (until the viewer's
  sender starts cutting the update; the host stamps it then) and ``encode+net`` (encode,
  send, TLS, decode, paste).

Usage::

    python benchmarks/bench_latency.py [--keys 120] [--window full|small] [--traffic]

``--traffic`` runs each case three ways, interleaved in blocks of keys: ``quiet`` (no traffic),
``unattached`` (cursor and clipboard traffic on the host's X display, ``benchmarks/traffic.py``:
a cursor change every 50 ms and a 1.8 KB clipboard text every 200 ms, but the host's cursor
and clipboard hubs stopped, so the host does none of that work and the viewer gets none) and
``attached`` (the same, with the hubs running as ``rdesk/host/app.py`` runs them, and the
viewer also putting 1.8 KB into the host's clipboard every 200 ms). Attached minus
unattached is the delay the product adds; unattached minus quiet is the traffic's own cost
(xclip processes, the X server's cursor work) on the machine's cores. The ``cpu/key`` row
is this process's CPU time (host, viewer, their X threads; not Xvfb or xclip) per key of
the block, waits between keys included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.injecting import Injectors
from benchmarks.traffic import SessionTraffic
from rdesk.client.connection import connect
from tests.e2e.conftest import PASSWORD, HostThread
from tests.xserver import Recorder, Xvfb

__all__ = ["main"]

W, H = 1920, 1080
#: Keys per block when quiet and traffic blocks alternate.
BLOCK = 10


class StampedRecorder(Recorder):
    """A recorder that stamps each event with the monotonic time its line arrived."""

    def _on_line(self, line: str) -> None:
        now = time.monotonic()
        super()._on_line(line)
        with self._cond:
            if self._events and "t" not in self._events[-1]:
                self._events[-1]["t"] = now


def _close(rgb: tuple[int, ...], hex_colour: str, tolerance: int = 40) -> bool:
    want = (int(hex_colour[0:2], 16), int(hex_colour[2:4], 16), int(hex_colour[4:6], 16))
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=False))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(
    keys: int, geometry: str | None, tmp: Path, gap: float, traffic: bool = False
) -> dict[str, dict[str, list[float]]]:
    """Stages of each timed key, by mode: ``quiet``, and ``unattached`` and ``attached`` when
    ``traffic``; ``cpu/key`` is this process's CPU seconds per key of each kind of block."""
    with Xvfb(W, H) as xvfb, StampedRecorder(xvfb.display, flash=True, geometry=geometry,
                                             no_motion=True) as recorder:
        make_injector = Injectors()

        settings: dict[str, Any] = {"clipboard": "both"} if traffic else {}
        thread = HostThread(xvfb.display, tmp, injector=make_injector, **settings)
        host = thread.start()
        streams = SessionTraffic(host, park=(5, 5)) if traffic else None
        if streams is not None:
            streams.attach()
        source = host.server.source
        grabs: list[tuple[float, float, int]] = []  # (start, end, frame_id) of changing grabs
        original = source.capture_once

        def capture_once(now: float) -> bool:
            changed = original(now)
            if changed:
                grabs.append((now, time.monotonic(), source.frame_id))
            return changed

        source.capture_once = capture_once  # type: ignore[method-assign]
        x, y, w, h = recorder.geometry
        probe = (x + w // 2, y + h // 2)
        names = ("total", "x", "capture", "deliver", "  wake", "  encode+net", "cpu/key")
        modes = ("quiet", "unattached", "attached") if traffic else ("quiet",)
        results: dict[str, dict[str, list[float]]] = {
            mode: {n: [] for n in names} for mode in modes
        }
        conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        try:
            await conn.wait_exact(30)
            arrived: dict[str, Any] = {}
            event = asyncio.Event()

            def on_update(_rects: list[tuple[int, int, int, int]]) -> None:
                want = arrived.get("want")
                if want and "at" not in arrived:
                    pixel = conn.framebuffer.image.getpixel(probe)
                    assert isinstance(pixel, tuple)
                    if _close(pixel, want):
                        arrived["at"] = time.monotonic()
                        # The host stamps an update when its sender starts cutting it (before
                        # encoding), on the same monotonic clock as ours.
                        arrived["stamp"] = conn.stats.last_update_host_us / 1e6
                        event.set()

            conn.on_update(on_update)
            keysym = 0x61  # 'a'

            async def one_key(i: int, stages: dict[str, list[float]] | None) -> None:
                await asyncio.sleep(random.uniform(gap, gap * 1.5))  # jitter: no phase lock
                start_events = len(recorder.events())
                want = recorder_next_colour(i)
                arrived.clear()
                arrived["want"] = want
                event.clear()
                grabs.clear()
                sent = time.monotonic()
                await conn.key(keysym, True)
                await asyncio.wait_for(event.wait(), 5)
                done = arrived["at"]
                await conn.key(keysym, False)
                press = recorder.wait_for(lambda e: e["type"] == "key_press", start=start_events)
                assert press.get("flash") == want, (press, want)
                if stages is None:
                    return  # warm-up
                seen = [g for g in grabs if g[0] >= press["t"] - 0.05] or grabs
                stages["total"].append(done - sent)
                stages["x"].append(press["t"] - sent)
                if seen:
                    stages["capture"].append(seen[0][1] - press["t"])
                    stages["deliver"].append(done - seen[0][1])
                    stages["  wake"].append(arrived["stamp"] - seen[0][1])
                    stages["  encode+net"].append(done - arrived["stamp"])

            for i in range(5):
                await one_key(i, None)
            i = 5
            # Blocks of BLOCK keys of each mode in turn: drift in the machine's load falls on
            # all alike.
            while i < keys + 5:
                for mode, stages in results.items():
                    async with contextlib.AsyncExitStack() as stack:
                        if streams is not None and mode != "quiet":
                            await stack.enter_async_context(
                                streams.flowing(conn, attached=mode == "attached"))
                            await asyncio.sleep(0.5)  # the streams under way first
                        cpu = time.process_time()
                        for _ in range(BLOCK):
                            await one_key(i, stages)
                            i += 1
                        stages["cpu/key"].append((time.process_time() - cpu) / BLOCK)
        finally:
            await conn.close()
            if streams is not None:
                streams.close()
            thread.stop()
            make_injector.close()
    if streams is not None:
        for mode, counts in streams.counts.items():
            print(f"# {mode} blocks, the viewer saw: {counts}")
    return results


_FLASH = ("ff0000", "00ff00", "0000ff", "ffff00", "ff00ff", "00ffff", "ffffff", "000000")


def recorder_next_colour(i: int) -> str:
    """The colour the recorder paints on its (i+1)-th KeyPress (tests/xclients/recorder.py)."""
    return _FLASH[(i + 1) % len(_FLASH)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=120)
    parser.add_argument(
        "--window", choices=("full", "small", "both"), default="both",
        help="recorder covering the screen, a 200x100 window, or both",
    )
    parser.add_argument(
        "--gap", type=float, default=0.4,
        help="seconds between keys (x1..1.5), past the previous key's lossless refresh (0.4)",
    )
    parser.add_argument(
        "--traffic", action="store_true",
        help="alternate blocks of keys: quiet, traffic with the hubs stopped, traffic with them",
    )
    args = parser.parse_args(argv)
    windows = {"full": None, "small": "200x100+860+490"}
    chosen = list(windows) if args.window == "both" else [args.window]
    print(f"# input-to-pixels latency, {W}x{H}, loopback TLS, {args.keys} keys")
    print(f"# {platform.node()} {platform.machine()} Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    print("| window | traffic | stage | median ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for name in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            results = asyncio.run(run(args.keys, windows[name], Path(tmp), args.gap,
                                      args.traffic))
        for mode, timed in results.items():
            for stage in timed:
                values = [v * 1000 for v in timed[stage]]
                if not values:
                    continue
                print(f"| {name} | {mode} | {stage} | {statistics.median(values):.2f} | "
                      f"{_pct(values, 0.95):.2f} | {max(values):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
