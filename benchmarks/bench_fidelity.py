"""Benchmark what the viewer *shows*, not only how often: photo panning and xterm scrolling.

Frame rate alone rewards sending worse pictures, so this scores the viewer's picture too.
Starts a 1920x1080x24 Xvfb and, per run, a fresh ``rdesk host`` subprocess (its CPU time is
its own) and a viewer on the client library, directly (loopback) or through the emulated
links of benchmarks/bench_links.py (tests/linkproxy.py as a process). Usage::

    python benchmarks/bench_fidelity.py [--seconds 8] [--runs 3]
        [--case photo|xterm|xterm-joined|browser] [--link loopback|"10 Mbit"|"2 Mbit"]
        [--fps 30|60] [--seed N | --image FILE]

Cases:

- ``photo``: ``benchmarks/xload.py photo`` pans across a photo-like picture
  (:func:`benchmarks.photo.photo`: shaded, textured shapes, soft shadows, film grain; twice the
  screen's width; or, with ``--image``, a real photograph cut to that size:
  :func:`benchmarks.photo.from_file`) over the whole screen, 8 pixels a frame at ``--fps``
  (30). Fidelity: for
  every update, the viewer's framebuffer (sampled every 5th pixel of every 5th row, from the
  third of each: 83 k pixels, a step prime to JPEG's 8x8 blocks; :func:`sample`) is compared
  with the frames the generator drew in
  the 200 ms before the update's capture timestamp, or up to 10 ms after it (host and
  viewer share this machine's monotonic clock; the generator stamps a frame only once the X
  server answered it), and the best match counts: the host captured one of them, a little before
  it stamped the update. PSNR is the median over the updates of the run's second half (once
  adaptation has settled) and, as ``p5``, its 5th percentile. Delivery: the drawn frames
  that some update showed (its picture best matching that frame, at 25 dB or more), counted
  however late they arrive (recording goes on for a second after the pan), and the median
  time from a frame's stamp to the arrival of the first update showing it
  (:func:`benchmarks.fidelity.delivery`): a fixed window's update count also loses the
  frames whose updates arrive after it closes, three of a 30 fps pan on a 100 ms path.
- ``xterm``: a real ``xterm`` filling the screen prints 30 log-like lines a second
  (``benchmarks/xterm_lines.py``). Counted: COPY rectangles and the updates holding one; after
  the last line, the time until the viewer holds an update flagged exact (``stop→exact``),
  then the viewer's framebuffer is compared with the X screen itself (``pixel-exact``). The
  viewer joins on a still, exact screen and the lines start then;
- ``xterm-joined``: the same, but the viewer joins while the lines already flow, so its first
  picture is a large change (planned lossy; a bitmap font's text is flat, and is sent exactly
  instead), and the scrolling goes on while it arrives;
- ``browser``: Debian's Chromium, headful on the Xvfb (driven by Playwright), shows a long
  article of headings, paragraphs and photographs and scrolls it 12 pixels a step, 30 steps
  a second (``benchmarks/browser_page.py``); counted as ``xterm`` is.

Per run: updates per second (and, apart, the updates of the first second, which holds the
change from tiles to video, and the rate after it), the 95th percentile and the longest gap
between updates, bytes received, host CPU seconds per second and milliseconds per update, and
the viewer's: this process's CPU per update (receiving, decoding, painting, and the sampling
above; the emulated link is a process of its own).
With ``--runs N`` each figure is the median of N runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_links import (
    Host,
    _fmt,
    _median_row,
    _p95,
    link_proxy,
    machine_line,
)
from benchmarks.browser_page import ScrollingPage, write_page
from benchmarks.fidelity import H, W, delivery, fidelity, sample, span
from benchmarks.photo import from_file, photo
from benchmarks.procs import cpu_seconds
from rdesk.client.connection import Connection, connect
from rdesk.protocol.encodings import Encoding
from tests.xserver import Xvfb, grab_root

__all__ = ["main"]

#: (name, rate bits/s, round-trip seconds); rate 0: no proxy at all.
LINKS = [("loopback", 0.0, 0.0), ("10 Mbit/30 ms", 10e6, 0.030), ("2 Mbit/80 ms", 2e6, 0.080)]
CASES = ["photo", "xterm", "xterm-joined", "browser"]
HERE = Path(__file__).resolve().parent
#: Seconds at the start of a run counted apart (the "1st s (after)" column).
START = 1.0
#: Seconds the photo case goes on recording after the pan, for the frames still on the way.
TAIL = 1.0


class Run:
    """What one viewer received during a run: arrival times, copies, sampled pictures."""

    def __init__(self, conn: Connection, sample: bool) -> None:
        self.conn = conn
        self.sample = sample
        self.times: list[float] = []
        #: (capture stamp in seconds of the monotonic clock, sampled RGB framebuffer)
        self.samples: list[tuple[float, np.ndarray]] = []
        self.copies = 0
        self.copy_updates = 0
        #: Arrival of the latest update, recording or not.
        self.last_arrival = 0.0
        self.recording = False
        conn.on_update(self._on_update)

    def _on_update(self, _: object) -> None:
        now = time.monotonic()
        self.last_arrival = now
        update = self.conn.stats.last_update
        if not self.recording or update is None:
            return
        self.times.append(now)
        copies = sum(1 for r in update.rects if r.encoding is Encoding.COPY)
        self.copies += copies
        self.copy_updates += bool(copies)
        if self.sample:
            self.samples.append((update.timestamp_us / 1e6, sample(self.conn.framebuffer.image)))


def _gaps(times: list[float], t0: float, t1: float) -> list[float]:
    edges = [t0, *times, t1]
    return [b - a for a, b in itertools.pairwise(edges)]


async def _connect(host: Host, port: int) -> Connection:
    # ``--video off``: the viewer declares no decoder, so the host sends tiles only.
    return await connect(f"wss://127.0.0.1:{port}", host.password, known_hosts=None,
                         pinned=host.fingerprint, video=getattr(host, "video", True))


async def _photo(host: Host, port: int, display: str, picture_path: Path, picture: np.ndarray,
                 seconds: float, fps: float) -> dict[str, Any]:
    conn = await _connect(host, port)
    xload = subprocess.Popen(
        [sys.executable, str(HERE / "xload.py"), "photo", "--seconds", str(seconds), "--fps",
         str(fps), "--picture", str(picture_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, DISPLAY=display),
    )
    try:
        assert xload.stdout is not None and xload.stdin is not None
        # Off the loop: the viewer acks its first updates meanwhile (read on the loop, the
        # generator's start held them for 1-1.7 s, and the host's round-trip estimate began
        # with that, cutting the picture's level as the pan started).
        if (await asyncio.to_thread(xload.stdout.readline)).strip() != "ready":
            raise SystemExit("xload did not start")
        await conn.wait_exact(120)  # its plain window, before the pan starts
        run = Run(conn, sample=True)
        xload.stdin.write("go\n")
        xload.stdin.flush()
        run.recording = True
        result = await _measure(host, conn, run, seconds, tail=True)
        out = await asyncio.to_thread(xload.stdout.read)
        await asyncio.to_thread(xload.wait, 30)
        await asyncio.sleep(TAIL)  # the last frames' updates, however slow the link
        run.recording = False
        frames = next(json.loads(line[7:]) for line in out.splitlines()
                      if line.startswith("frames "))
        result["psnr"], result["psnr_p5"] = fidelity(run.samples, frames, picture,
                                                     result.pop("t0"), result.pop("t1"))
        result["drawn_fps"] = len(frames) / seconds
        result["frames_drawn"] = len(frames)
        result["frames_shown"], result["shown_ms"] = delivery(run.samples, run.times, frames,
                                                              picture)
        return result
    finally:
        if xload.poll() is None:
            xload.kill()
            xload.wait()
        await conn.close()


async def _xterm(host: Host, port: int, display: str, tmp: Path, seconds: float,
                 joined: bool) -> dict[str, Any]:
    control = Path(tempfile.mkdtemp(dir=tmp, prefix="xterm-"))
    # Joining a flowing terminal takes a moment: its lines outlast the measurement.
    flowing = seconds + 3 if joined else seconds
    # The default 6x13 "fixed" font: 318 columns by 82 lines fill 1920x1080 (less the borders).
    xterm = subprocess.Popen(
        ["xterm", "-geometry", "318x82+0+0", "-e", sys.executable, str(HERE / "xterm_lines.py"),
         str(control), "--seconds", str(flowing)],
        env=dict(os.environ, DISPLAY=display), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(3000):
            if (control / "ready").exists():
                break
            await asyncio.sleep(0.01)
        else:
            raise SystemExit("xterm did not start")
        if joined:
            (control / "go").write_text("go\n")
            await asyncio.sleep(0.5)
        conn = await _connect(host, port)
        try:
            run = Run(conn, sample=False)
            if not joined:
                await conn.wait_exact(120)
                (control / "go").write_text("go\n")
            run.recording = True
            result = await _measure(host, conn, run, seconds)
            for _ in range(1000):
                if (control / "stopped").exists():
                    break
                await asyncio.sleep(0.01)
            stopped = float((control / "stopped").read_text())
            return await _settled(conn, display, run, result, stopped)
        finally:
            await conn.close()
    finally:
        xterm.kill()
        xterm.wait()


async def _settled(conn: Connection, display: str, run: Run, result: dict[str, Any],
                   stopped: float) -> dict[str, Any]:
    """``result`` with what follows the content's last change at ``stopped`` (monotonic):
    the time until the viewer was exact, whether it then holds the screen, the copies."""
    await conn.wait_exact(120)
    await asyncio.sleep(1.0)  # nothing changes any more: the screen is the truth
    screen = await asyncio.to_thread(grab_root, display)
    # Once the viewer is exact on a still screen the host sends nothing more, so its last
    # update is the one that made it exact (checked against the screen below).
    result["stop_exact_ms"] = max(0.0, run.last_arrival - stopped) * 1000
    result.pop("t0"), result.pop("t1")
    result["pixel_exact"] = screen.tobytes() == conn.framebuffer.image.tobytes()
    result["copies"] = run.copies
    result["copy_updates"] = run.copy_updates
    return result


async def _browser(host: Host, port: int, display: str, tmp: Path, seconds: float
                   ) -> dict[str, Any]:
    page = ScrollingPage(display, write_page(Path(tempfile.mkdtemp(dir=tmp, prefix="page-"))),
                         (W, H))
    try:
        await page.open()
        conn = await _connect(host, port)
        try:
            run = Run(conn, sample=False)
            await conn.wait_exact(120)
            run.recording = True
            # Taken before the page starts: the stop read from it is never late, so
            # stop→exact is never short.
            go = time.monotonic()
            scrolling = asyncio.ensure_future(page.scroll(seconds))
            result = await _measure(host, conn, run, seconds)
            stopped = go + await scrolling
            return await _settled(conn, display, run, result, stopped)
        finally:
            await conn.close()
    finally:
        await page.close()


async def _measure(host: Host, conn: Connection, run: Run, seconds: float, tail: bool = False
                   ) -> dict[str, Any]:
    """Count updates, gaps, bytes and host CPU for ``seconds``; with ``tail``, ``run`` goes
    on recording after them (for :func:`benchmarks.fidelity.delivery`: the caller stops it)."""
    bytes0 = conn.stats.bytes
    cpu0, t0 = cpu_seconds(host.proc.pid), time.monotonic()
    viewer0 = cpu_seconds(os.getpid())
    await asyncio.sleep(seconds)
    t1 = time.monotonic()
    run.recording = tail
    cpu = cpu_seconds(host.proc.pid) - cpu0
    viewer = cpu_seconds(os.getpid()) - viewer0
    gaps = _gaps(run.times, t0, t1)
    updates = len(run.times)
    # The first second apart: it holds the change from tiles to video (the first pictures,
    # the key unit), so the whole run's rate mixes a start-up cost with the steady rate.
    first = sum(1 for t in run.times if t < t0 + START)
    span_fps, first_ms = span(run.times, t0, t1)
    return {
        "fps": updates / (t1 - t0),
        "span_fps": span_fps,
        "first_ms": first_ms,
        "first_second": first,
        "fps_after": (updates - first) / (t1 - t0 - START),
        "gap_p95_ms": _p95(gaps) * 1000,
        "gap_max_ms": max(gaps) * 1000,
        "bytes": conn.stats.bytes - bytes0,
        "cpu": cpu / (t1 - t0),
        "cpu_ms_per_update": cpu / updates * 1000 if updates else None,
        "viewer_ms_per_update": viewer / updates * 1000 if updates else None,
        "t0": t0,
        "t1": t1,
    }


async def _cell(host: Host, case: str, link: tuple[str, float, float], display: str,
                tmp: Path, picture: tuple[Path, np.ndarray], args: argparse.Namespace
                ) -> dict[str, Any]:
    name, rate, rtt = link

    async def go(port: int) -> dict[str, Any]:
        if case == "photo":
            return await _photo(host, port, display, picture[0], picture[1], args.seconds,
                                args.fps)
        if case == "browser":
            return await _browser(host, port, display, tmp, args.seconds)
        return await _xterm(host, port, display, tmp, args.seconds, case == "xterm-joined")

    if rate:
        with link_proxy(host.port, rate, rtt, args.seconds + 300) as port:
            row = await go(port)
    else:
        row = await go(host.port)
    return {"case": case, "link": name, **row}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per run (8)")
    parser.add_argument("--runs", type=int, default=1, help="runs per cell; medians (1)")
    parser.add_argument("--case", choices=CASES, action="append", help="cases to run")
    parser.add_argument("--link", action="append",
                        help="only links whose name contains this (e.g. '2 Mbit', loopback)")
    parser.add_argument("--fps", type=float, default=30.0, help="photo pan frame rate (30)")
    parser.add_argument("--seed", type=int, default=16,
                        help="photo: the picture's seed (benchmarks/photo.py; 16), to check a "
                        "figure on content it was not tuned on")
    parser.add_argument("--image", metavar="FILE",
                        help="photo: pan across this image file (a real photograph, cut to "
                        "twice the screen's width) instead of a generated picture")
    parser.add_argument("--video", choices=("on", "off", "both"), default="on",
                        help="viewer declares H.264 (on), not (off: tiles), or both, "
                        "interleaved run by run (before/after back to back)")
    args = parser.parse_args(argv)
    modes = ["off", "on"] if args.video == "both" else [args.video]
    links = [link for link in LINKS if not args.link or any(n in link[0] for n in args.link)]
    cases = args.case or CASES
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp_name, Xvfb(W, H) as xvfb:
        tmp = Path(tmp_name)
        picture: tuple[Path, np.ndarray] = (tmp / "photo.npy", np.zeros((0, 0, 3), np.uint8))
        if "photo" in cases:
            try:
                pixels = (from_file(args.image, 2 * W, H) if args.image
                          else photo(2 * W, H, seed=args.seed))
            except ValueError as err:
                parser.error(str(err))
            picture = (picture[0], pixels)
            np.save(picture[0], picture[1])
        for case in cases:
            for i, link in enumerate(links):
                runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
                for run in range(args.runs):
                    for mode in modes:
                        host = Host(xvfb.display, tmp / f"{case}{i}-{run}-{mode}")
                        host.video = mode == "on"  # type: ignore[attr-defined]
                        try:
                            runs[mode].append(asyncio.run(_cell(
                                host, case, link, xvfb.display, tmp, picture, args)))
                        finally:
                            host.stop()
                        print(mode, runs[mode][-1], file=sys.stderr, flush=True)
                for mode in modes:
                    row = _median_row(runs[mode])
                    row["video"] = mode
                    if case != "photo":
                        row["pixel_exact"] = (f"{sum(r['pixel_exact'] for r in runs[mode])}/"
                                              f"{len(runs[mode])}")
                    rows.append(row)
    print("| case | video | link | updates/s | from the 1st update (ms to it) "
          "| updates in 1st s (upd/s after) | gap p95 ms "
          "| longest gap ms | PSNR dB (p5) "
          "| MB received | host CPU s/s | host CPU ms/update | viewer CPU ms/update "
          "| COPY rects (updates with one) "
          "| stop→exact ms | pixel-exact | frames shown (of drawn), drawn→shown ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        case = r["case"] if r["case"] != "photo" else f"photo {r['drawn_fps']:.0f} fps"
        score = (f"{_fmt(r.get('psnr'), 1)} ({_fmt(r.get('psnr_p5'), 1)})"
                 if r["case"] == "photo" else "–")
        shown = (f"{r['frames_shown']:.0f} ({r['frames_drawn']:.0f}), "
                 f"{_fmt(r.get('shown_ms'))}" if r["case"] == "photo" else "–")
        copies = (f"{r['copies']:.0f} ({r['copy_updates']:.0f})" if r["case"] != "photo"
                  else "–")
        print(f"| {case} | {r['video']} | {r['link']} | {r['fps']:.1f} | "
              f"{_fmt(r.get('span_fps'), 1)} ({_fmt(r.get('first_ms'))}) | "
              f"{r['first_second']:.0f} ({r['fps_after']:.1f}) | {r['gap_p95_ms']:.0f} | "
              f"{r['gap_max_ms']:.0f} | {score} | {r['bytes'] / 1e6:.2f} | {r['cpu']:.2f} | "
              f"{_fmt(r['cpu_ms_per_update'], 1)} | {_fmt(r['viewer_ms_per_update'], 1)} | "
              f"{copies} | {_fmt(r.get('stop_exact_ms'))} | "
              f"{r.get('pixel_exact', '–')} | {shown} |")
    if "photo" in cases:
        print(f"photo: {args.image or f'benchmarks/photo.py, seed {args.seed}'}")
    print(machine_line(args.seconds, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
