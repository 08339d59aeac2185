"""Benchmark bandwidth adaptation: three workloads over four emulated links, at 1920x1080.

Starts a 1920x1080x24 Xvfb, a real ``rdesk host`` (a subprocess, so its CPU time is its own),
and for every (workload, link) cell a shaping proxy (tests/linkproxy.py) and a viewer on the
client library. Prints a markdown table and the machine. Usage::

    python benchmarks/bench_links.py [--seconds 8] [--runs 3] [--only motion] [--link "2 Mbit"]

Workloads (drawn by tests/xclients/painter.py, without dumps):

- ``typing``: a 12x16 "glyph" of a new colour every 150 ms on an otherwise still screen;
  latency = (first viewer update showing the glyph − the moment it was drawn) + the link's
  one-way delay (the keystroke's own trip to the host, which this harness does not inject);
- ``scrolling``: the whole screen scrolls up 16 rows (one text line) per command, as fast as
  the painter goes (at most 30/s);
- ``motion``: ``benchmarks/xload.py motion``, a window over the whole screen into which four
  different gradient+noise frames are copied from server-side pixmaps 60 times a second (one
  atomic request per frame, so every grab sees a whole frame, as with video).

Per cell: delivered updates per second and the longest gap between updates, latency median and
p95 (typing), bytes the viewer received, and the host process's CPU seconds per second; with
``--runs N`` each figure is the median of N runs (a fresh host each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.procs import cpu_seconds, free_port
from rdesk.client.connection import connect
from rdesk.host.security.tls import certificate_fingerprint, ensure_host_certificate
from tests.xserver import Painter, Xvfb

__all__ = ["main"]

#: (name, rate bits/s, round-trip seconds)
LINKS = [
    ("100 Mbit/2 ms", 100e6, 0.002),
    ("10 Mbit/30 ms", 10e6, 0.030),
    ("2 Mbit/80 ms", 2e6, 0.080),
    ("512 kbit/150 ms", 512e3, 0.150),
]
WORKLOADS = ["typing", "scrolling", "motion"]
XLOAD = Path(__file__).resolve().parent / "xload.py"
ROOT = Path(__file__).resolve().parent.parent


class Host:
    """``rdesk host`` on a display, as a subprocess."""

    def __init__(self, display: str, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        config = tmp / "config"
        cert, _ = ensure_host_certificate(config)
        self.fingerprint = certificate_fingerprint(cert)
        self.password = secrets.token_urlsafe(12)
        pw = tmp / "password"
        pw.write_text(self.password + "\n")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rdesk", "--config-dir", str(config), "host", "--display",
             display, "--bind", "127.0.0.1", "--port", str(self.port), "--password-file",
             str(pw)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "fingerprint:" in line:
                break
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _driver(painter: Painter, workload: str, stop: threading.Event,
            probes: list[tuple[float, int, int, tuple[int, int, int]]]) -> None:
    # A new seed every cell: redrawing the same glyph in the same colour changes no pixel.
    rng = __import__("random").Random(time.monotonic_ns())
    n = 0
    while not stop.is_set() and n < 2000:
        n += 1
        if workload == "typing":
            x, y = rng.randrange(100, 1800), rng.randrange(100, 1000)
            rgb = (rng.randrange(256), rng.randrange(256), n % 256)
            drawn = time.monotonic()
            painter.rect(x, y, 12, 16, rgb)
            probes.append((drawn, x + 6, y + 8, rgb))
            stop.wait(0.15)
        elif workload == "scrolling":
            started = time.monotonic()
            painter.command("scroll 16")
            stop.wait(max(0.0, 1 / 30 - (time.monotonic() - started)))
        else:
            stop.wait()  # xload draws the motion


@contextlib.contextmanager
def link_proxy(port: int, rate: float, rtt: float, lifetime: float) -> Iterator[int]:
    """An emulated link (tests/linkproxy.py) to ``port``, as a process; yields its port.

    The link runs in its own process: on the viewer's event loop, every blocking decode would
    delay packets and acks too, which the host would read as queueing on the link.
    """
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tests.linkproxy", str(port), "--rate", str(rate),
         "--delay", str(rtt / 2), "--lifetime", str(lifetime)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert proxy.stdout is not None and proxy.stdin is not None
    try:
        yield int(proxy.stdout.readline())
    finally:
        proxy.stdin.close()
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()


async def _cell(host: Host, painter: Painter, workload: str, link: tuple[str, float, float],
                seconds: float) -> dict[str, Any]:
    name, rate, rtt = link
    with link_proxy(host.port, rate, rtt, seconds + 180) as port:
        conn = await connect(f"wss://127.0.0.1:{port}", host.password, known_hosts=None,
                             pinned=host.fingerprint)
        xload: subprocess.Popen[str] | None = None
        try:
            await conn.wait_exact(60)  # start from a settled screen
            if workload == "motion":
                xload = _start_xload(painter.display, seconds)
            probes: list[tuple[float, int, int, tuple[int, int, int]]] = []
            latencies: list[float] = []
            times: list[float] = []
            pending: list[tuple[float, int, int, tuple[int, int, int]]] = []

            def on_update(_: object) -> None:
                now = time.monotonic()
                times.append(now)
                pending.extend(probes[len(pending) + len(latencies):])
                image = conn.framebuffer.image
                for probe in list(pending):
                    drawn, x, y, rgb = probe
                    # A lossy first pass counts once it is close to the drawn colour.
                    if _close(image.getpixel((x, y)), rgb):
                        latencies.append(now - drawn + rtt / 2)
                        pending.remove(probe)

            conn.on_update(on_update)
            if xload is not None:
                assert xload.stdin is not None
                xload.stdin.write("go\n")
                xload.stdin.flush()
            bytes0 = conn.stats.bytes
            cpu0, t0 = cpu_seconds(host.proc.pid), time.monotonic()
            stop = threading.Event()
            driver = threading.Thread(target=_driver, args=(painter, workload, stop, probes),
                                      daemon=True)
            driver.start()
            await asyncio.sleep(seconds)
            stop.set()
            await asyncio.to_thread(driver.join, 30)
            elapsed = time.monotonic() - t0
            cpu = cpu_seconds(host.proc.pid) - cpu0
            received = conn.stats.bytes - bytes0
            gaps = [b - a for a, b in zip([t0, *times], [*times, t0 + elapsed], strict=True)]
            row = {
                "workload": workload,
                "link": name,
                "fps": len(times) / elapsed,
                "max_gap_ms": max(gaps) * 1000 if gaps else float("nan"),
                # Where the longest gap began, seconds into the run (0: before the first update).
                "max_gap_at_s": ([t0, *times][gaps.index(max(gaps))] - t0) if gaps else None,
                "lat_median_ms": statistics.median(latencies) * 1000 if latencies else None,
                "lat_p95_ms": _p95(latencies) * 1000 if latencies else None,
                "probes": f"{len(latencies)}/{len(probes)}" if workload == "typing" else "",
                "bytes": received,
                "cpu": cpu / elapsed,
            }
            if xload is not None:
                # No settling after motion: a lossless refresh of a noise-covered screen takes
                # minutes on the slow links, and the next cell starts a fresh host anyway.
                await asyncio.to_thread(xload.wait, 30)
            else:
                await conn.wait_exact(60)  # let the screen settle before the next cell
            return row
        finally:
            if xload is not None and xload.poll() is None:
                xload.kill()
                xload.wait()
            await conn.close()


def _start_xload(display: str, seconds: float) -> subprocess.Popen[str]:
    """Start the motion load client; it has mapped its window and made its frames on return."""
    xload = subprocess.Popen(
        [sys.executable, str(XLOAD), "motion", "--seconds", str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, DISPLAY=display),
    )
    assert xload.stdout is not None
    if xload.stdout.readline().strip() != "ready":
        raise SystemExit("xload did not start")
    return xload


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of per-figure medians over runs of the same cell."""
    row = dict(runs[0])
    for key, value in row.items():
        if isinstance(value, float | int):
            values = [r[key] for r in runs if r[key] is not None]
            row[key] = statistics.median(values) if values else None
    return row


def _close(a: Any, b: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b, strict=False))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def machine_line(seconds: float, runs: int) -> str:
    """The machine a table was measured on, and how, as its closing line."""
    return (f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{platform.platform()}; {seconds:g} s per run, median of {runs} run(s) per cell; "
            f"1-min load at the end {os.getloadavg()[0]:.2f}.")


def _fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per cell (8)")
    parser.add_argument("--runs", type=int, default=1, help="runs per cell; medians (1)")
    parser.add_argument("--only", choices=WORKLOADS, action="append", help="workloads to run")
    parser.add_argument("--link", action="append",
                        help="only links whose name contains this (e.g. '2 Mbit')")
    args = parser.parse_args(argv)
    links = [link for link in LINKS if not args.link or any(n in link[0] for n in args.link)]
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-links-") as tmp,
        Xvfb(1920, 1080) as xvfb,
        Painter(xvfb.display, seed=1, dump=False, timeout=60) as painter,
    ):
        for workload in args.only or WORKLOADS:
            for i, link in enumerate(links):
                runs = []
                for run in range(args.runs):
                    # A fresh host per run, so its CPU time is the run's alone.
                    host = Host(xvfb.display, Path(tmp) / f"{workload}{i}-{run}")
                    try:
                        runs.append(asyncio.run(_cell(host, painter, workload, link,
                                                      args.seconds)))
                    finally:
                        host.stop()
                    print(runs[-1], file=sys.stderr, flush=True)
                rows.append(_median_row(runs))
    print("| workload | link (rate/RTT) | updates/s | longest gap ms | latency median ms "
          "| latency p95 ms | bytes received | host CPU (s/s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lat = r["probes"] and f" ({r['probes']} seen)"
        print(f"| {r['workload']} | {r['link']} | {r['fps']:.1f} | {r['max_gap_ms']:.0f} | "
              f"{_fmt(r['lat_median_ms'])}{lat} | {_fmt(r['lat_p95_ms'])} | "
              f"{r['bytes'] / 1e6:.2f} MB | {r['cpu']:.2f} |")
    print(machine_line(args.seconds, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
