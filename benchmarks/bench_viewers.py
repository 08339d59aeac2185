"""Several viewers at once (issue 6): host CPU per frame and delivered fps with 1, 2, 4, 8 viewers,
and a fast viewer's fps alone vs beside a paused or throttled one.

Starts Xvfb at 1920x1080x24 and, for every configuration, a fresh ``rdesk host`` as its own
process (its CPU is read from /proc/PID/stat: utime + stime of all its threads) and a load
client, ``benchmarks/xload.py``:

- typing: one 10x16 glyph rectangle at a new position 30 times a second;
- motion: precomputed, different full-screen gradient+noise frames put as fast as the X server
  takes them, at most 60 a second;
- photo: a photo-like picture (benchmarks/photo.py) panned across the whole screen, 8 pixels a
  frame at 30 fps: video for viewers that decode it (the client library does when PyAV
  imports), so N viewers show what sharing the encoder saves (rdesk/host/video/shared.py).

The host runs from the current directory's tree when it has ``rdesk/`` (``python -m rdesk``
puts it first), so ``cd /work/before && PYTHONPATH=$PWD python /path/to/bench_viewers.py``
measures another tree's host with this script's viewers.

The viewers are client-library connections in this process (they decode every update, so their
CPU is this process's, not the host's). A viewer's "frames" are its distinct update rounds
(updates sharing one host timestamp; a full-screen round may span several Update messages).

    python benchmarks/bench_viewers.py [--seconds 8] [--runs 3] [--viewers 1,2,4,8]

Prints a markdown table of medians over the runs, with the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.photo import photo
from benchmarks.procs import cpu_seconds, free_port, load
from benchmarks.xload import motion_frames
from rdesk.client.connection import Connection, connect
from rdesk.client.watch import inspect_update
from rdesk.host.encoding.encode import encode_rect
from tests.xserver import Xvfb

PASSWORD = "benchmark password"
XLOAD = Path(__file__).resolve().parent / "xload.py"


@dataclass
class Counter:
    """What one viewer received: updates, distinct rounds ("frames"), JPEG qualities."""

    conn: Connection
    frames: int = 0
    last_ts: int = -1
    qualities: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conn.on_update(self._on_update)

    def _on_update(self, _painted: object) -> None:
        update = self.conn.stats.last_update
        if update is None or update.timestamp_us == self.last_ts:
            return
        self.last_ts = update.timestamp_us
        self.frames += 1
        quality, _scale = inspect_update(update)
        if quality is not None:
            self.qualities.append(quality)


@dataclass
class Result:
    host_cpu: float  # % of one core
    host_ms_per_frame: float  # host CPU per frame delivered to viewer 1
    fps: list[float]  # frames/s per viewer (fast ones first; viewer 1 first)
    updates_per_s: list[float]
    bench_cpu: float
    xvfb_cpu: float
    xload_cpu: float
    drawn_per_s: float
    qualities: list[int]  # median JPEG quality seen by each viewer (0: none)
    load: float


def start_host(display: str, cfg: Path, pw: Path, port: int, log: Path,
               fps: float | None = None) -> tuple[subprocess.Popen[str], str]:
    host = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(cfg), "host", "--display", display,
         "--bind", "127.0.0.1", "--port", str(port), "--password-file", str(pw),
         *(["--max-fps", f"{fps:g}"] if fps else [])],
        stdout=subprocess.PIPE, stdin=subprocess.PIPE, stderr=log.open("a"), text=True,
    )
    assert host.stdout is not None
    fingerprint = ""
    while not fingerprint:
        line = host.stdout.readline()
        if not line:
            raise SystemExit(f"host did not start; see {log}")
        if "fingerprint:" in line:
            fingerprint = line.split()[-1]
    # Keep draining its output so it never blocks on a full pipe.
    threading.Thread(target=host.stdout.read, daemon=True).start()
    return host, fingerprint


async def hold_paused(conn: Connection, duty: tuple[float, float] | None) -> None:
    """Keep ``conn``'s transport from reading: always (``duty`` None), or reading ``on`` seconds
    every ``period`` (``duty = (on, period)``). The pause is re-asserted often because
    websockets resumes reading itself when its own receive queue drains."""
    transport = conn.ws.transport
    while True:
        if duty is None:
            transport.pause_reading()
            await asyncio.sleep(0.05)
            continue
        on, period = duty
        transport.resume_reading()
        await asyncio.sleep(on)
        until = time.monotonic() + period - on
        while time.monotonic() < until:
            transport.pause_reading()
            await asyncio.sleep(0.05)


async def child_viewer(url: str, fingerprint: str, mode: str) -> None:
    """``--child``: one slow viewer in its own process, so its decoding never delays the fast
    viewer's acknowledgements in this process. Prints ``ready``, holds the pause until stdin
    closes, then prints its frame count."""
    conn = await connect(url, PASSWORD, known_hosts=None, pinned=fingerprint, name="bench-slow",
                         timeout=30)
    await conn.wait_exact(60)
    counter = Counter(conn)
    print("ready", flush=True)
    holder = asyncio.create_task(hold_paused(conn, None if mode == "paused" else (0.05, 1.0)))
    while await asyncio.to_thread(sys.stdin.readline):  # each line: report the frame count
        print(f"frames {counter.frames}", flush=True)
    holder.cancel()
    os._exit(0)  # do not wait for a clean close on a paused transport


async def run_config(display: str, tmp: Path, workload: str, fast: int, slow: str | None,
                     seconds: float, fps: float | None = None) -> Result:
    """One host, one load client, ``fast`` normal viewers and optionally one slow viewer.

    ``fps``: the load client's drawing rate and the host's ``--max-fps`` (default: their own).
    """
    if workload == "photo" and not (tmp / "photo.npy").exists():
        np.save(tmp / "photo.npy", photo(2 * 1920, 1080))
    xload = subprocess.Popen(
        [sys.executable, str(XLOAD), workload, "--seconds", str(seconds + 1.5),
         *(["--fps", f"{fps:g}"] if fps else []),
         *(["--picture", str(tmp / "photo.npy")] if workload == "photo" else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, DISPLAY=display),
    )
    assert xload.stdin is not None and xload.stdout is not None
    if xload.stdout.readline().strip() != "ready":
        raise SystemExit("xload did not start")
    port = free_port()
    host, fingerprint = start_host(display, tmp / "cfg", tmp / "pw", port, tmp / "host.log",
                                   fps)
    conns: list[Connection] = []
    holder: asyncio.Task[None] | None = None
    child: subprocess.Popen[str] | None = None
    try:
        if slow and slow.endswith("-proc"):
            child = subprocess.Popen(
                [sys.executable, __file__, "--child", f"wss://127.0.0.1:{port}", fingerprint,
                 slow.removesuffix("-proc")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None
            if (await asyncio.to_thread(child.stdout.readline)).strip() != "ready":
                raise SystemExit("slow viewer process did not start")
        total = fast + (1 if slow and child is None else 0)
        conns = list(await asyncio.gather(*[
            connect(f"wss://127.0.0.1:{port}", PASSWORD, known_hosts=None, pinned=fingerprint,
                    name=f"bench-{i}", timeout=30)
            for i in range(total)]))
        await asyncio.gather(*[c.wait_exact(60) for c in conns])
        counters = [Counter(c) for c in conns]
        if slow and child is None:
            holder = asyncio.create_task(
                hold_paused(conns[-1], None if slow == "paused" else (0.05, 1.0)))
        await asyncio.sleep(1.0)
        xload.stdin.write("go\n")
        xload.stdin.flush()
        await asyncio.sleep(0.5)  # let the load reach its pace
        pids = [host.pid, os.getpid(), xvfb_pid(display), xload.pid]
        cpu0 = [cpu_seconds(p) for p in pids]
        frames0 = [c.frames for c in counters]
        updates0 = [c.conn.stats.updates for c in counters]
        for c in counters:
            c.qualities.clear()
        child_frames0 = await child_frames(child)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        cpu = [(cpu_seconds(p) - c0) / elapsed for p, c0 in zip(pids, cpu0, strict=True)]
        frames = [(c.frames - f0) / elapsed for c, f0 in zip(counters, frames0, strict=True)]
        updates = [(c.conn.stats.updates - u0) / elapsed
                   for c, u0 in zip(counters, updates0, strict=True)]
        qualities = [int(statistics.median(c.qualities)) if c.qualities else 0
                     for c in counters]
        if child is not None:
            frames.append((await child_frames(child) - child_frames0) / elapsed)
            qualities.append(0)
        out = next((line.split() for line in (await asyncio.to_thread(xload.stdout.read))
                    .splitlines() if line.startswith("drawn ")), [])
        drawn = int(out[1]) / float(out[3]) if len(out) >= 4 else 0.0
        return Result(
            host_cpu=100 * cpu[0],
            host_ms_per_frame=1000 * cpu[0] / frames[0] if frames[0] else float("nan"),
            fps=frames, updates_per_s=updates, bench_cpu=100 * cpu[1], xvfb_cpu=100 * cpu[2],
            xload_cpu=100 * cpu[3], drawn_per_s=drawn, qualities=qualities, load=load(),
        )
    finally:
        if child is not None:
            child.kill()
            child.wait()
        if holder is not None:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder
            with contextlib.suppress(Exception):
                conns[-1].ws.transport.resume_reading()
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        host.terminate()
        try:
            host.wait(10)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait()
        if xload.poll() is None:
            xload.kill()
        xload.wait()


async def child_frames(child: subprocess.Popen[str] | None) -> int:
    """Ask the slow-viewer process how many frames it has received so far."""
    if child is None:
        return 0
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("count\n")
    child.stdin.flush()
    return int((await asyncio.to_thread(child.stdout.readline)).split()[-1])


_XVFB_PIDS: dict[str, int] = {}


def xvfb_pid(display: str) -> int:
    return _XVFB_PIDS[display]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_speed(frames: list[np.ndarray]) -> float:
    """Median ms of this thread's CPU to JPEG-encode one 1920x1080 motion frame (quality 80),
    alone: how fast the machine runs right now. On the shared VM this moves by a third
    within minutes, and host CPU per frame moves with it, so each run reports it."""
    times = []
    for i in range(4 * len(frames)):
        t0 = time.thread_time()
        encode_rect(frames[i % len(frames)], (0, 0, 1920, 1080), lossless=False, quality=80)
        times.append(time.thread_time() - t0)
    return statistics.median(times) * 1e3


def bgrx_motion_frames() -> list[np.ndarray]:
    """xload.py's motion frames as the host grabs them (BGRX)."""
    out = []
    for rgb in motion_frames(1920, 1080, 4):
        bgrx = np.zeros((1080, 1920, 4), dtype=np.uint8)
        bgrx[..., :3] = rgb[..., ::-1]
        out.append(bgrx)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--viewers", default="1,2,4,8")
    parser.add_argument("--workloads", default="typing,motion")
    parser.add_argument("--no-slow", action="store_true", help="skip fast-beside-slow")
    parser.add_argument("--fps", type=float,
                        help="load client's drawing rate and the host's --max-fps (default 60)")
    parser.add_argument("--child", nargs=3, metavar=("URL", "FINGERPRINT", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child_viewer(*args.child))
        return
    ns = [int(n) for n in args.viewers.split(",")]
    workloads = args.workloads.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench-viewers-"))
    (tmp / "pw").write_text(PASSWORD + "\n")
    configs: list[tuple[str, int, str | None]] = [(w, n, None) for w in workloads for n in ns]
    if not args.no_slow:
        configs += [("motion", 1, slow) for slow in
                    (None, "paused", "throttled", "paused-proc", "throttled-proc")]
        configs = list(dict.fromkeys(configs))
    results: dict[tuple[str, int, str | None], list[Result]] = {c: [] for c in configs}
    loads = [load()]
    speed_frames = bgrx_motion_frames()
    speeds = [machine_speed(speed_frames)]
    with Xvfb(1920, 1080, 24) as xvfb:
        assert xvfb.proc is not None
        _XVFB_PIDS[xvfb.display] = xvfb.proc.pid
        for run in range(args.runs):
            for workload, n, slow in configs:
                r = asyncio.run(run_config(xvfb.display, tmp, workload, n, slow, args.seconds,
                                           args.fps))
                results[(workload, n, slow)].append(r)
                print(f"run {run + 1} {workload} N={n} slow={slow}: host {r.host_cpu:.0f} % "
                      f"{r.host_ms_per_frame:.1f} ms/frame, fps "
                      f"{' '.join(f'{f:.1f}' for f in r.fps)}, bench {r.bench_cpu:.0f} %, "
                      f"Xvfb {r.xvfb_cpu:.0f} %, xload {r.xload_cpu:.0f} % "
                      f"({r.drawn_per_s:.1f} drawn/s), q {r.qualities}, load {r.load:.2f}, "
                      f"JPEG alone {speeds[-1]:.2f} ms",
                      file=sys.stderr, flush=True)
                loads.append(r.load)
                speeds.append(machine_speed(speed_frames))

    cpu_model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu_model}; 1-min load during the runs "
          f"{min(loads):.2f}..{max(loads):.2f} (median {med(loads):.2f}); "
          f"{args.runs} runs of {args.seconds:g} s per row, medians; machine speed (one motion "
          f"frame JPEG-encoded alone, between runs) {min(speeds):.2f}..{max(speeds):.2f} ms "
          f"(median {med(speeds):.2f})")
    print()
    print("| workload | viewers | host CPU, % of a core | host CPU ms / frame (viewer 1) "
          "| marginal viewer, % of first | host CPU ms / viewer-frame (all viewers) "
          "| frames/s per viewer, min / median "
          "| drawn/s | this process (viewers) CPU % | JPEG q |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workload in workloads:
        base = None
        for n in ns:
            rs = results[(workload, n, None)]
            ms = med([r.host_ms_per_frame for r in rs])
            cpu = med([r.host_cpu for r in rs])
            if n == ns[0]:
                base = ms
            marginal = ("—" if base is None or n == 1 or not base
                        else f"{100 * (ms - base) / (n - 1) / base:+.0f}")
            fmin = med([min(r.fps) for r in rs])
            fmed = med([statistics.median(r.fps) for r in rs])
            qs = sorted({q for r in rs for q in r.qualities if q})
            per_vf = med([10 * r.host_cpu / sum(r.fps) for r in rs if sum(r.fps)])
            print(f"| {workload} | {n} | {cpu:.0f} | {ms:.1f} | {marginal} | {per_vf:.1f} | "
                  f"{fmin:.1f} / {fmed:.1f} | {med([r.drawn_per_s for r in rs]):.1f} | "
                  f"{med([r.bench_cpu for r in rs]):.0f} | "
                  f"{','.join(map(str, qs)) or '—'} |")
    if not args.no_slow:
        print()
        print("| full-screen motion | fast viewer frames/s | vs alone | slow viewer frames/s "
              "| host CPU % |")
        print("|---|---:|---:|---:|---:|")
        alone = med([r.fps[0] for r in results[("motion", 1, None)]])
        for slow, label in ((None, "fast viewer alone"),
                            ("paused", "beside a paused viewer (pause_reading)"),
                            ("throttled", "beside a throttled viewer (reads 50 ms / 1 s)"),
                            ("paused-proc", "beside a paused viewer in its own process"),
                            ("throttled-proc", "beside a throttled viewer in its own process")):
            rs = results[("motion", 1, slow)]
            fps = med([r.fps[0] for r in rs])
            slow_fps = med([r.fps[1] for r in rs]) if slow else float("nan")
            print(f"| {label} | {fps:.1f} (runs: {', '.join(f'{r.fps[0]:.1f}' for r in rs)}) | "
                  f"{100 * (fps - alone) / alone:+.0f} % | "
                  f"{'—' if slow is None else f'{slow_fps:.1f}'} | "
                  f"{med([r.host_cpu for r in rs]):.0f} |")


if __name__ == "__main__":
    main()
