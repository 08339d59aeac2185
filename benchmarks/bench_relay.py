"""Benchmark the relay on loopback: latency and motion through it against direct, and how many
typing-sized sessions one relay process splices, with its CPU per Mbit/s.

1. **Key-to-pixels latency** (bench_latency.py's method: a real host on Xvfb, real XTest, the
   recorder window flashing a new colour on each KeyPress; the viewer times key sent -> the
   update showing the colour), direct to the host's TLS port and by ID through a relay
   process (TLS to the relay, splice, end-to-end tunnel, the host's RelayLink). The keys of
   each mode are spread over ``--alternations`` blocks, interleaved direct, relay, relay,
   direct, ... (5 warm-up keys a block, not counted); the medians of each mode, each block's,
   and relay − direct are printed.
2. **Full-screen motion**: benchmarks/xload.py's ``motion`` load over the whole screen;
   updates/s and Mbit/s the viewer receives, direct and through the relay, alternating.
   ``--motion-only PAIRS`` runs only this, PAIRS pairs of runs, and with ``--link-mbit R``
   over an emulated link (tests/linkproxy.py, ``--link-rtt`` ms) on each leg: viewer-host
   direct; host-relay and viewer-relay (websocket and splice ports) through the relay.
3. **Concurrent sessions**: one relay process (its per-source limits raised: every peer here is
   127.0.0.1), ``--hosts`` registered hosts (real RelayLinks, echoing), and N viewers on
   ``/connect``, each sending a 96-byte message every 100 ms (typing: a key event sealed in a
   tunnel record) answered by 160 bytes; for each N, the relay process's CPU (from
   /proc/PID/stat) over ``--seconds`` and the bytes it spliced.

Usage::

    python benchmarks/bench_relay.py [--keys 60] [--alternations 4] [--latency-only]
                                     [--motion-seconds 8] [--sessions 100,250,500]
                                     [--seconds 10] [--lane ws|raw]
                                     [--splicer kernel|userspace] [--workers 2]
    python benchmarks/bench_relay.py --motion-only 5 [--motion-seconds 8] [--lane ws|raw]
                                     [--link-mbit 100 [--link-rtt 2]]

``--lane raw`` takes the raw lane (the host's own TLS over TCP the relay copies,
docs/relay.md) for the latency and the sessions; the sessions' load comes from ``--workers``
processes (benchmarks/rawload.py) so that it can offer 10 Mbit/s at 500 sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchmarks import rawload, relayload
from benchmarks.bench_latency import StampedRecorder, _close, _pct, recorder_next_colour
from benchmarks.bench_links import link_proxy
from benchmarks.injecting import Injectors
from benchmarks.relayload import cpu_seconds, relay_process, round_trips, tls_floor
from rdesk.client.connection import Connection, connect
from rdesk.client.relayed import relayed_url
from rdesk.host.relayed import RelayPresence
from rdesk.host.relaylink import load_identity
from rdesk.host.security.tls import ensure_host_certificate
from tests.e2e.conftest import PASSWORD, HostThread, RunningHost
from tests.xserver import Recorder, Xvfb

__all__ = ["main"]

W, H = 1280, 720
@contextlib.asynccontextmanager
async def host_on(host: RunningHost, relay: str | None, cert_dir: Path, lane: str = "ws"
                  ) -> AsyncIterator[str]:
    """The address to reach ``host`` at: its own, or by ID through ``relay`` on ``lane``."""
    if relay is None:
        yield host.url
        return
    key, der = load_identity(*ensure_host_certificate(cert_dir))

    async def start() -> RelayPresence:
        presence = RelayPresence(host.server, relay, key, der, None, None, lambda _l: None)
        presence.start()
        await asyncio.wait_for(presence.link.registered.wait(), 20)
        return presence

    presence = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(start(), host.loop))
    try:
        yield relayed_url(relay, presence.host_id, lane)
    finally:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(presence.stop(), host.loop))


async def viewer(url: str, host: RunningHost) -> Connection:
    return await connect(url, PASSWORD, known_hosts=None, pinned=host.fingerprint)


async def latency(conn: Connection, recorder: Recorder, keys: int) -> list[float]:
    """bench_latency.py's loop, total only: key sent -> the update shows the new colour."""
    x, y, w, h = recorder.geometry
    probe = (x + w // 2, y + h // 2)
    await conn.wait_exact(30)
    arrived: dict[str, Any] = {}
    event = asyncio.Event()

    def on_update(_rects: list[tuple[int, int, int, int]]) -> None:
        want = arrived.get("want")
        if want and "at" not in arrived:
            pixel = conn.framebuffer.image.getpixel(probe)
            if isinstance(pixel, tuple) and _close(pixel, want):
                arrived["at"] = time.monotonic()
                event.set()

    conn.on_update(on_update)
    totals: list[float] = []
    flashes = len([e for e in recorder.events() if e["type"] == "key_press"])
    for i in range(keys + 5):
        await asyncio.sleep(0.3 + 0.2 * (i % 5) / 5)  # jitter: no phase lock with capture
        arrived.clear()
        arrived["want"] = recorder_next_colour(flashes + i)
        event.clear()
        sent = time.monotonic()
        await conn.key(0x61, True)
        await asyncio.wait_for(event.wait(), 5)
        await conn.key(0x61, False)
        if i >= 5:
            totals.append(arrived["at"] - sent)
    return totals


#: One motion run: updates/s, Mbit/s, the relay's CPU (% of a core, ``None`` direct), the
#: 1-minute load average, and the updates of its slowest and fastest whole second.
MotionRun = tuple[float, float, float | None, float, tuple[int, int]]


async def motion(conn: Connection, display: str, seconds: float, pid: int | None = None
                 ) -> MotionRun:
    """Updates/s and Mbit/s received while xload.py moves the whole screen, the CPU (% of
    a core) process ``pid`` (the relay) spent meanwhile, the 1-minute load average, and the
    slowest and fastest second (a stall shows as one slow second, a starved run as all)."""
    await conn.wait_exact(30)
    load = subprocess.Popen([sys.executable, str(Path(__file__).parent / "xload.py"), "motion",
                             "--seconds", str(seconds + 4)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ,
                                                                    "DISPLAY": display})
    try:
        assert load.stdout is not None and load.stdin is not None
        assert load.stdout.readline().strip() == "ready"
        load.stdin.write("go\n")
        load.stdin.flush()
        await asyncio.sleep(3.0)  # past the first full frames and the controller's ramp-up
        updates, data, start = conn.stats.updates, conn.stats.bytes, time.monotonic()
        cpu = cpu_seconds(pid) if pid is not None else 0.0
        per_second, mark = [], updates
        for _ in range(max(1, round(seconds))):
            await asyncio.sleep(1.0)
            per_second.append(conn.stats.updates - mark)
            mark = conn.stats.updates
        elapsed = time.monotonic() - start
        used = 100 * (cpu_seconds(pid) - cpu) / elapsed if pid is not None else None
        return ((conn.stats.updates - updates) / elapsed,
                (conn.stats.bytes - data) * 8 / elapsed / 1e6, used, os.getloadavg()[0],
                (min(per_second), max(per_second)))
    finally:
        load.wait(30)


async def motion_runs(host: RunningHost, display: str, relay: str, pid: int, pairs: int,
                      seconds: float, tmp: Path, lane: str, direct: str | None = None
                      ) -> dict[str, MotionRun]:
    """``pairs`` pairs of motion runs, relay then direct, alternating (``motion N MODE``:
    updates/s, Mbit/s, relay CPU), so neither mode alone profits from what the first run
    warmed (the host's encode cache, the page cache of the load's frames) or suffers a
    drift in the machine's load. ``direct``: the host's address if not its own (a link)."""
    results: dict[str, MotionRun] = {}
    for run_no in range(2 * pairs):
        mode, via = ("relay", relay) if run_no % 2 == 0 else ("direct", None)
        async with host_on(host, via, tmp / "host-config", lane) as url:
            conn = await viewer(url if via or direct is None else direct, host)
            try:
                results[f"motion {run_no + 1} {mode}"] = await motion(
                    conn, display, seconds, pid if via else None)
            finally:
                await conn.close()
    return results


async def motion_over_link(pairs: int, seconds: float, tmp: Path, lane: str, splicer: str,
                           link: tuple[float, float] | None) -> dict[str, Any]:
    """Motion only, direct against relay, optionally over an emulated ``link`` (bits/s,
    round trip s; tests/linkproxy.py in processes of their own): direct, the viewer reaches
    the host's port over it; through the relay both the host and the viewer reach the
    relay over it (its websocket port and its splice port, told to both ends), as a relay
    between two sites would be reached."""
    with contextlib.ExitStack() as stack:
        xvfb = stack.enter_context(Xvfb(W, H))
        splice = None
        if link is not None:
            free = socket.socket()
            free.bind(("127.0.0.1", 0))
            splice_port = free.getsockname()[1]
            free.close()
            shaped = stack.enter_context(link_proxy(splice_port, *link, 3600))
            splice = (splice_port, f"127.0.0.1:{shaped}")
        relay, pid = stack.enter_context(relay_process(tmp, splicer=splicer, splice=splice))
        thread = HostThread(xvfb.display, tmp)
        host = thread.start()
        stack.callback(thread.stop)
        direct = None
        if link is not None:
            relay_port = int(relay.rsplit(":", 1)[1])
            relay = f"wss://127.0.0.1:{stack.enter_context(link_proxy(relay_port, *link, 3600))}"
            direct = f"wss://127.0.0.1:{stack.enter_context(link_proxy(host.port, *link, 3600))}"
        return await motion_runs(host, xvfb.display, relay, pid, pairs, seconds, tmp, lane,
                                 direct)


def block_order(alternations: int) -> list[str]:
    """The modes' order over ``alternations`` pairs of blocks: direct, relay, then relay,
    direct, and so on (ABBA), so a drift in the machine's load over the run weighs on both."""
    order: list[str] = []
    for i in range(alternations):
        order += ["direct", "relay"] if i % 2 == 0 else ["relay", "direct"]
    return order


async def face_to_face(keys: int, alternations: int, motion_seconds: float | None,
                       tmp: Path, lane: str = "ws", splicer: str = "kernel") -> dict[str, Any]:
    """Key-to-pixels in ``2 * alternations`` blocks (``latency direct`` / ``latency relay``:
    one list of seconds per block, in :func:`block_order`), then, unless ``motion_seconds``
    is ``None``, four motion runs alternating relay and direct."""
    results: dict[str, Any] = {"latency direct": [], "latency relay": []}
    per_block = max(1, -(-keys // alternations))  # keys per mode, spread over its blocks
    with Xvfb(W, H) as xvfb, relay_process(tmp, splicer=splicer) as (relay, pid):
        make_injector = Injectors()

        thread = HostThread(xvfb.display, tmp, injector=make_injector)
        host = thread.start()
        vias = {"direct": None, "relay": relay}
        try:
            for mode in block_order(alternations):
                async with host_on(host, vias[mode], tmp / "host-config", lane) as url:
                    with StampedRecorder(xvfb.display, flash=True, geometry="200x100+540+310",
                                         no_motion=True) as recorder:
                        conn = await viewer(url, host)
                        try:
                            results[f"latency {mode}"].append(
                                await latency(conn, recorder, per_block))
                        finally:
                            await conn.close()
            if motion_seconds:
                results.update(await motion_runs(host, xvfb.display, relay, pid, 2,
                                                 motion_seconds, tmp, lane))
        finally:
            thread.stop()
            make_injector.close()
    return results


def _ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):.2f} | {_pct(ms, 0.95):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=60,
                        help="key-to-pixels samples of each mode (direct, relay)")
    parser.add_argument("--alternations", type=int, default=4,
                        help="blocks of each mode the keys are spread over, interleaved")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the key-to-pixels blocks (no motion, no sessions)")
    parser.add_argument("--motion-seconds", type=float, default=8.0)
    parser.add_argument("--motion-only", type=int, metavar="PAIRS",
                        help="only full-screen motion: PAIRS pairs of runs, relay and direct")
    parser.add_argument("--link-mbit", type=float,
                        help="with --motion-only: an emulated link of this rate on each leg")
    parser.add_argument("--link-rtt", type=float, default=2.0,
                        help="the emulated link's round trip, ms")
    parser.add_argument("--sessions", default="100,250,500")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--sessions-only", action="store_true",
                        help="skip the latency and motion runs")
    parser.add_argument("--floor", action="store_true",
                        help="also measure a no-op TLS echo process under the same load")
    parser.add_argument("--round-trips", type=int, default=0, metavar="N",
                        help="also time N typing-sized round trips direct and through the relay")
    parser.add_argument("--lane", choices=("ws", "raw"), default="ws",
                        help="the relay lane: ws (websocket splice, end-to-end tunnel) or raw "
                        "(the host's TLS over TCP the relay copies)")
    parser.add_argument("--splicer", choices=("kernel", "userspace"), default="kernel",
                        help="the raw lane's copier in the relay (kernel where it can be)")
    parser.add_argument("--workers", type=int, default=2,
                        help="load processes offering the sessions (only the relay's CPU counts)")
    parser.add_argument("--relay-tree", type=Path,
                        help="run the relay process from this source tree (before/after)")
    args = parser.parse_args(argv)
    relayload.RELAY_TREE = args.relay_tree
    print(f"# relay lane {args.lane}" + (f", {args.splicer} splicer" if args.lane == "raw"
                                           else ""))
    print(f"# relay on loopback, {W}x{H}; {platform.node()} {platform.machine()} "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs (shared machine)")
    if args.relay_tree is not None:
        print(f"# the relay process runs from {args.relay_tree}")
    if args.motion_only:
        _motion_only(args)
        return 0
    if not args.sessions_only:
        _face_to_face(args)
    if args.latency_only:
        return 0
    if args.round_trips:
        with tempfile.TemporaryDirectory() as tmp:
            trips = asyncio.run(round_trips(args.round_trips, Path(tmp)))
        print("\n| round trip, 96 B out, 160 B back | median ms | p95 ms |\n|---|---|---|")
        for mode in ("direct", "relay"):
            print(f"| {mode} | {_ms(trips[mode])} |")
    _sessions(args)
    return 0


def _face_to_face(args: argparse.Namespace) -> None:
    motion_seconds = None if args.latency_only else args.motion_seconds
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(face_to_face(args.keys, args.alternations, motion_seconds,
                                           Path(tmp), args.lane, args.splicer))
    direct, relayed = results["latency direct"], results["latency relay"]
    print(f"| key-to-pixels, {len(direct)} blocks of each, interleaved ABBA | median ms | "
          "p95 ms |\n|---|---|---|")
    for mode, blocks in (("direct", direct), ("relay", relayed)):
        pooled_ms = _ms([t for b in blocks for t in b])
        print(f"| {mode}, all {sum(map(len, blocks))} keys | {pooled_ms} |")
    print("\n| alternation | direct median ms | relay median ms | relay − direct ms |"
          "\n|---|---|---|---|")
    differences = []
    for i, (d, r) in enumerate(zip(direct, relayed, strict=True)):
        d_ms, r_ms = statistics.median(d) * 1000, statistics.median(r) * 1000
        differences.append(r_ms - d_ms)
        print(f"| {i + 1} | {d_ms:.2f} | {r_ms:.2f} | {r_ms - d_ms:+.2f} |")
    pooled = (statistics.median([t for b in relayed for t in b])
              - statistics.median([t for b in direct for t in b])) * 1000
    print(f"\nrelay − direct at the median: {pooled:+.2f} ms over all keys; "
          f"median of the {len(differences)} alternations' differences "
          f"{statistics.median(differences):+.2f} ms (target: at most +1 ms)")
    if motion_seconds is not None:
        _motion_table(results)


def _motion_only(args: argparse.Namespace) -> None:
    link = None if args.link_mbit is None else (args.link_mbit * 1e6, args.link_rtt / 1000)
    print("# link: " + ("none (loopback)" if link is None else
                        f"{args.link_mbit:g} Mbit/s, {args.link_rtt:g} ms round trip, on each "
                        "leg (direct: viewer-host; relay: host-relay and viewer-relay)"))
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(motion_over_link(args.motion_only, args.motion_seconds, Path(tmp),
                                               args.lane, args.splicer, link))
    _motion_table(results)
    for mode in ("relay", "direct"):
        ups = [v[0] for k, v in results.items() if k.endswith(mode)]
        print(f"{mode}: median {statistics.median(ups):.1f} updates/s over {len(ups)} runs")
    print(f"load average {os.getloadavg()[0]:.1f}")


def _motion_table(results: dict[str, Any]) -> None:
    print("\n| full-screen motion (run) | updates/s | slowest–fastest second | Mbit/s | "
          "relay CPU % of a core | load |\n|---|---|---|---|---|---|")
    for name, value in results.items():
        if name.startswith("motion"):
            ups, mbit, cpu, load, (slowest, fastest) = value
            print(f"| {name[7:]} | {ups:.1f} | {slowest}–{fastest} | {mbit:.1f} | "
                  f"{'-' if cpu is None else f'{cpu:.1f}'} | {load:.1f} |")


def _sessions(args: argparse.Namespace) -> None:
    levels = [int(n) for n in args.sessions.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp:
        rows = rawload.sessions(levels, args.seconds, args.hosts, Path(tmp), args.lane,
                                args.workers, args.splicer)
    print(f"\n{args.workers} load processes; lane {args.lane}"
          + (f" ({args.splicer} splicer)" if args.lane == "raw" else "")
          + f"; load average {os.getloadavg()[0]:.1f}")
    print("\n| sessions asked | spliced | relay CPU % of a core | Mbit/s spliced | "
          "CPU % per 10 Mbit/s |\n|---|---|---|---|---|")
    for level, spliced, cpu, mbit in rows:
        per10 = cpu / mbit * 10 if mbit else float("nan")
        print(f"| {level} | {spliced} | {cpu:.1f} | {mbit:.2f} | {per10:.1f} |")
    if args.floor:
        print("\n| TLS echo floor: sessions | connected | CPU % of a core | Mbit/s | "
              "CPU % per 10 Mbit/s |\n|---|---|---|---|---|")
        for level in levels:
            with tempfile.TemporaryDirectory() as tmp:
                connected, cpu, mbit = asyncio.run(tls_floor(level, args.seconds, Path(tmp)))
            per10 = cpu / mbit * 10 if mbit else float("nan")
            print(f"| {level} | {connected} | {cpu:.1f} | {mbit:.2f} | {per10:.1f} |")


if __name__ == "__main__":
    raise SystemExit(main())

