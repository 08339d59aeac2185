"""Benchmark the relay on loopback: latency and motion through it against direct, and how many
typing-sized sessions one relay process splices, with its CPU per Mbit/s.

1. **Key-to-pixels latency** (bench_latency.py's method: a real host on Xvfb, real XTest, the
   recorder window flashing a new colour on each KeyPress; the viewer times key sent -> the
   update showing the colour), direct to the host's TLS port and by ID through a relay
   process (TLS to the relay, splice, end-to-end tunnel, the host's RelayLink).
2. **Full-screen motion**: benchmarks/xload.py's ``motion`` load over the whole screen;
   updates/s and Mbit/s the viewer receives, direct and through the relay.
3. **Concurrent sessions**: one relay process (its per-source limits raised: every peer here is
   127.0.0.1), ``--hosts`` registered hosts (real RelayLinks, echoing), and N viewers on
   ``/connect``, each sending a 96-byte message every 100 ms (typing: a key event sealed in a
   tunnel record) answered by 160 bytes; for each N, the relay process's CPU (from
   /proc/PID/stat) over ``--seconds`` and the bytes it spliced.

Usage::

    python benchmarks/bench_relay.py [--keys 60] [--motion-seconds 8]
                                     [--sessions 100,250,500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.connection import Connection as WsConnection
from websockets.asyncio.server import serve as ws_serve

from benchmarks.bench_latency import StampedRecorder, _close, _pct, recorder_next_colour
from rdesk.client.connection import Connection, connect
from rdesk.client.relayed import relayed_url
from rdesk.client.tls import client_ssl_context
from rdesk.host.input.inject import PynputInjector
from rdesk.host.relayed import RelayPresence
from rdesk.host.relaylink import RelayLink, load_identity
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from tests.e2e.conftest import PASSWORD, HostThread, RunningHost
from tests.xserver import Recorder, Xvfb

__all__ = ["main"]

W, H = 1280, 720
TYPING_UP, TYPING_DOWN, TYPING_PERIOD = 96, 160, 0.1
_RELAY_SCRIPT = """
import asyncio, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.relay.server import RelayConfig, RelayServer
from rdesk.relay.tokens import TokenStore

async def main():
    data = Path(sys.argv[1])
    cert, key = ensure_host_certificate(data)
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    lots = (1e6, 1_000_000)
    config = RelayConfig(bind="127.0.0.1", port=0, open_enrolment=True, max_sessions=5000,
                         connect_rate=lots, host_rate=lots, id_rate=lots,
                         max_waiting_per_id=1000)
    server = RelayServer(config, server_ssl_context(cert, key), der, tokens=TokenStore(data))
    await server.start()
    print(server.port, server.fingerprint, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


_ECHO_SCRIPT = """
import asyncio, sys
from pathlib import Path
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context

SIZE = int(sys.argv[2])

class Echo(asyncio.Protocol):
    # The floor: one TLS read and one TLS write per message, nothing else.
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(b"h" * SIZE)

async def main():
    cert, key = ensure_host_certificate(Path(sys.argv[1]))
    server = await asyncio.get_running_loop().create_server(
        Echo, "127.0.0.1", 0, ssl=server_ssl_context(cert, key))
    print(server.sockets[0].getsockname()[1], "-", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
#: The source tree the relay process runs from (``--relay-tree``: an older commit's, for a
#: before/after comparison in the same session); ``None``: this one.
RELAY_TREE: Path | None = None


@contextlib.contextmanager
def relay_process(tmp: Path, script: str = _RELAY_SCRIPT) -> Iterator[tuple[str, int]]:
    """A relay process (limits raised), or ``script``'s; yields ``(url, pid)``."""
    tree = RELAY_TREE or Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp / "relay"), str(TYPING_DOWN)],
                            stdout=subprocess.PIPE, text=True, cwd=tree,
                            env={**os.environ, "PYTHONPATH": str(tree)})
    try:
        assert proc.stdout is not None
        port, _ = proc.stdout.readline().split()
        yield f"wss://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def host_on(host: RunningHost, relay: str | None, cert_dir: Path
                  ) -> AsyncIterator[str]:
    """The address to reach ``host`` at: its own, or by ID through ``relay``."""
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
        yield relayed_url(relay, presence.host_id)
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


async def motion(conn: Connection, display: str, seconds: float, pid: int | None = None
                 ) -> tuple[float, float, float | None]:
    """Updates/s and Mbit/s received while xload.py moves the whole screen, and the CPU (% of
    a core) process ``pid`` (the relay) spent meanwhile."""
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
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - start
        used = 100 * (cpu_seconds(pid) - cpu) / elapsed if pid is not None else None
        return ((conn.stats.updates - updates) / elapsed,
                (conn.stats.bytes - data) * 8 / elapsed / 1e6, used)
    finally:
        load.wait(30)


async def face_to_face(keys: int, motion_seconds: float, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Xvfb(W, H) as xvfb, relay_process(tmp) as (relay, pid):
        injectors: list[PynputInjector] = []

        def make_injector(display: str) -> PynputInjector:
            injectors.append(PynputInjector(display))
            return injectors[-1]

        thread = HostThread(xvfb.display, tmp, injector=make_injector)
        host = thread.start()
        try:
            for mode, via in (("direct", None), ("relay", relay)):
                async with host_on(host, via, tmp / "host-config") as url:
                    with StampedRecorder(xvfb.display, flash=True, geometry="200x100+540+310",
                                         no_motion=True) as recorder:
                        conn = await viewer(url, host)
                        try:
                            results[f"latency {mode}"] = await latency(conn, recorder, keys)
                        finally:
                            await conn.close()
            # Motion alternates, so neither mode alone profits from what the first run warmed
            # (the host's encode cache, the page cache of the load's frames).
            for run_no, (mode, via) in enumerate(2 * (("relay", relay), ("direct", None))):
                async with host_on(host, via, tmp / "host-config") as url:
                    conn = await viewer(url, host)
                    try:
                        results[f"motion {run_no + 1} {mode}"] = await motion(
                            conn, xvfb.display, motion_seconds, pid if via else None)
                    finally:
                        await conn.close()
        finally:
            thread.stop()
            for injector in injectors:
                injector.close()
    return results


async def _echo(ws: WsConnection) -> None:
    async for message in ws:
        await ws.send(b"h" * TYPING_DOWN if isinstance(message, bytes) else b"")


async def _typist(url: str, host_id: str, stop: asyncio.Event, counts: list[int]) -> None:
    async with ws_connect(url + "/connect", ssl=client_ssl_context(), compression=None,
                          ping_interval=None, max_size=2**20) as ws:
        await ws.send(json.dumps({"t": "connect", "id": host_id, "version": 1}))
        answer = json.loads(await ws.recv())
        assert answer == {"t": "spliced"}, answer
        counts[0] += 1
        payload = b"v" * TYPING_UP
        while not stop.is_set():
            await ws.send(payload)
            await ws.recv()
            counts[1] += TYPING_UP + TYPING_DOWN
            await asyncio.sleep(TYPING_PERIOD)


async def sessions(levels: list[int], seconds: float, hosts: int, tmp: Path
                   ) -> list[tuple[int, int, float, float]]:
    """(asked, spliced, relay CPU % of a core, Mbit/s spliced) for each level."""
    rows = []
    with relay_process(tmp) as (relay, pid):
        links: list[RelayLink] = []
        tasks: list[asyncio.Task[None]] = []
        for i in range(hosts):
            key, der = load_identity(*ensure_host_certificate(tmp / f"h{i}"))
            link = RelayLink(relay, key, der, None, None, on_rendezvous=_echo,
                             say=lambda _l: None)
            links.append(link)
            tasks.append(asyncio.ensure_future(link.run()))
        await asyncio.gather(*(asyncio.wait_for(link.registered.wait(), 60) for link in links))
        for level in levels:
            stop, counts = asyncio.Event(), [0, 0]
            typists: list[asyncio.Future[None]] = []
            while len(typists) < level:  # in batches: a loaded machine times handshakes out
                batch = min(level - len(typists), 25)
                typists += [asyncio.ensure_future(_typist(
                    relay, links[(len(typists) + i) % hosts].host_id, stop, counts))
                    for i in range(batch)]
                for _ in range(300):  # this batch spliced and typing (or 30 s)
                    if counts[0] >= len(typists) or all(t.done() for t in typists[-batch:]):
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            spliced, before_bytes = counts[0], counts[1]
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            mbit = (counts[1] - before_bytes) * 8 / (t1 - t0) / 1e6
            rows.append((level, spliced, 100 * (cpu1 - cpu0) / (t1 - t0), mbit))
            stop.set()
            await asyncio.gather(*typists, return_exceptions=True)
        for link in links:
            await link.close()
    return rows


async def round_trips(samples: int, tmp: Path) -> dict[str, list[float]]:
    """Seconds for a typing-sized message (96 bytes, answered by 160) to go and come back:
    ``direct`` to a TLS websocket echo server, ``relay`` by ID through a relay process to an
    echoing RelayLink host — what the relay adds to every key-to-pixels round trip (two TLS
    hops and the splice), without the capture pipeline's noise. Interleaved, one at a time."""
    times: dict[str, list[float]] = {"direct": [], "relay": []}
    with relay_process(tmp) as (relay, _pid):
        key, der = load_identity(*ensure_host_certificate(tmp / "host"))
        link = RelayLink(relay, key, der, None, None, on_rendezvous=_echo, say=lambda _l: None)
        task = asyncio.ensure_future(link.run())
        await asyncio.wait_for(link.registered.wait(), 60)
        cert, cert_key = ensure_host_certificate(tmp / "direct")
        async with ws_serve(_echo, "127.0.0.1", 0, ssl=server_ssl_context(cert, cert_key),
                            compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            tls = client_ssl_context()
            async with ws_connect(f"wss://127.0.0.1:{port}", ssl=tls, compression=None) as direct, \
                    ws_connect(relay + "/connect", ssl=tls, compression=None) as relayed:
                await relayed.send(json.dumps({"t": "connect", "id": link.host_id, "version": 1}))
                assert json.loads(await relayed.recv()) == {"t": "spliced"}
                payload = b"v" * TYPING_UP
                for i in range(samples + 10):
                    pair = [("direct", direct), ("relay", relayed)]
                    for name, ws in pair if i % 2 else pair[::-1]:
                        start = time.perf_counter()
                        await ws.send(payload)
                        await ws.recv()
                        if i >= 10:  # past the warm-up
                            times[name].append(time.perf_counter() - start)
                    await asyncio.sleep(0.01)
        await link.close()
        await task
    return times


async def _echo_typist(port: int, stop: asyncio.Event, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl_context())
    counts[0] += 1
    payload = b"v" * TYPING_UP
    try:
        while not stop.is_set():
            writer.write(payload)
            await reader.readexactly(TYPING_DOWN)
            counts[1] += TYPING_UP + TYPING_DOWN
            await asyncio.sleep(TYPING_PERIOD)
    finally:
        writer.close()


async def tls_floor(level: int, seconds: float, tmp: Path) -> tuple[int, float, float]:
    """A no-op TLS echo process under ``level`` typists: (connected, CPU % of a core, Mbit/s).
    Each message costs it one TLS read and one TLS write, as each costs the relay."""
    with relay_process(tmp, _ECHO_SCRIPT) as (url, pid):
        port = int(url.rsplit(":", 1)[1])
        stop, counts = asyncio.Event(), [0, 0]
        typists = [asyncio.ensure_future(_echo_typist(port, stop, counts))
                   for _ in range(level)]
        for _ in range(600):
            if counts[0] >= level:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        before_bytes, cpu0, t0 = counts[1], cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        stop.set()
        await asyncio.gather(*typists, return_exceptions=True)
    return counts[0], 100 * (cpu1 - cpu0) / (t1 - t0), (counts[1] - before_bytes) * 8 / (
        t1 - t0) / 1e6


def _ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):.2f} | {_pct(ms, 0.95):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--motion-seconds", type=float, default=8.0)
    parser.add_argument("--sessions", default="100,250,500")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--sessions-only", action="store_true",
                        help="skip the latency and motion runs")
    parser.add_argument("--floor", action="store_true",
                        help="also measure a no-op TLS echo process under the same load")
    parser.add_argument("--round-trips", type=int, default=0, metavar="N",
                        help="also time N typing-sized round trips direct and through the relay")
    parser.add_argument("--relay-tree", type=Path,
                        help="run the relay process from this source tree (before/after)")
    args = parser.parse_args(argv)
    global RELAY_TREE
    RELAY_TREE = args.relay_tree
    print(f"# relay on loopback, {W}x{H}; {platform.node()} {platform.machine()} "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs (shared machine)")
    if RELAY_TREE is not None:
        print(f"# the relay process runs from {RELAY_TREE}")
    if not args.sessions_only:
        _face_to_face(args)
    if args.round_trips:
        with tempfile.TemporaryDirectory() as tmp:
            trips = asyncio.run(round_trips(args.round_trips, Path(tmp)))
        print("\n| round trip, 96 B out, 160 B back | median ms | p95 ms |\n|---|---|---|")
        for mode in ("direct", "relay"):
            print(f"| {mode} | {_ms(trips[mode])} |")
    _sessions(args)
    return 0


def _face_to_face(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(face_to_face(args.keys, args.motion_seconds, Path(tmp)))
    print("| key-to-pixels | median ms | p95 ms |\n|---|---|---|")
    for mode in ("direct", "relay"):
        print(f"| {mode} | {_ms(results[f'latency {mode}'])} |")
    print("\n| full-screen motion (run) | updates/s | Mbit/s | relay CPU % of a core |"
          "\n|---|---|---|---|")
    for name, value in results.items():
        if name.startswith("motion"):
            ups, mbit, cpu = value
            print(f"| {name[7:]} | {ups:.1f} | {mbit:.1f} | "
                  f"{'-' if cpu is None else f'{cpu:.1f}'} |")


def _sessions(args: argparse.Namespace) -> None:
    levels = [int(n) for n in args.sessions.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(sessions(levels, args.seconds, args.hosts, Path(tmp)))
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

