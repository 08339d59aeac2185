"""The raw splicers' CPU per 10 Mbit/s at a typing-sized load (issue 14's <= 2 % target).

A relay process (this script with ``--serve KIND``) accepts plain TCP connections on
127.0.0.1, reads a 9-byte preamble from each (``V`` or ``H`` and a pair number) and joins each
viewer with its host through :func:`rdesk.relay.rawsplice.open_splicer`, sending the viewer
its go byte. Load-generator processes (``--workers``, so that the load can be offered when one
Python process would be CPU-bound) run the pairs: each viewer sends 96 bytes, waits for the
host's 160-byte answer and sleeps 100 ms (bench_relay's typists, without TLS: the bytes are
opaque to the splicer either way).

Measured over ``--seconds`` after every pair is joined and typing: the relay process's CPU;
what the kernel spends outside it (the kernel splicer sends from the softirq that received a
segment and from its psock workers, charged to whoever ran then: ``kworker`` threads, the
senders' system time, softirq time), as the machine's whole busy time (/proc/stat) minus the
load generators' own CPU — on a shared machine that includes everyone else's load, so it is
an upper bound; and the Mbit/s carried (payload both ways).

    python benchmarks/bench_rawsplice.py --kinds userspace,kernel --pairs 100,500 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.relayload import TYPING_DOWN, TYPING_PERIOD, TYPING_UP, cpu_seconds
from rdesk.relay.rawsplice import RawSpliceResult, open_splicer

TICK = os.sysconf("SC_CLK_TCK")


# the relay process -------------------------------------------------------------------------


async def serve(kind: str) -> None:
    """Join viewer and host of each pair number; print the port, then run until killed."""
    if "kind" in inspect.signature(open_splicer).parameters:
        splicer, reason = open_splicer(kind, max_pairs=4096)
    else:  # an older tree's, for a before/after comparison
        splicer, reason = open_splicer(kernel=kind == "kernel", max_pairs=4096)  # type: ignore
    if kind == "kernel" and (reason is not None or splicer.kind != "kernel"):
        raise SystemExit(f"kernel splicer unavailable: {reason}")
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    waiting: dict[int, tuple[str, socket.socket]] = {}
    joins: set[asyncio.Task[RawSpliceResult]] = set()

    async def arrive(sock: socket.socket) -> None:
        preamble = b""
        while len(preamble) < 9:
            chunk = await loop.sock_recv(sock, 9 - len(preamble))
            if not chunk:
                sock.close()
                return
            preamble += chunk
        role, number = preamble[:1].decode(), struct.unpack("<Q", preamble[1:])[0]
        other = waiting.pop(number, None)
        if other is None:
            waiting[number] = (role, sock)
            return
        viewer, host = (sock, other[1]) if role == "V" else (other[1], sock)
        task = asyncio.ensure_future(splicer.join(viewer, host, first_to_a=b"G"))
        joins.add(task)
        task.add_done_callback(joins.discard)

    arrivals: set[asyncio.Task[None]] = set()
    while True:
        sock, _ = await loop.sock_accept(listener)
        task = asyncio.ensure_future(arrive(sock))
        arrivals.add(task)
        task.add_done_callback(arrivals.discard)


# the load generators -----------------------------------------------------------------------


class _Host(asyncio.Protocol):
    """Answers every 96 bytes received with 160."""

    def __init__(self) -> None:
        self.have = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.have += len(data)
        answers, self.have = divmod(self.have, TYPING_UP)
        if answers and self.transport is not None:
            self.transport.write(b"h" * (TYPING_DOWN * answers))


async def _pair(port: int, number: int, stop: asyncio.Event, joined: Synchronized[int],
                carried: Synchronized[int]) -> None:
    loop = asyncio.get_running_loop()
    host_transport, _ = await loop.create_connection(_Host, "127.0.0.1", port)
    host_transport.write(b"H" + struct.pack("<Q", number))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"V" + struct.pack("<Q", number))
    try:
        assert await reader.readexactly(1) == b"G"
        with joined.get_lock():
            joined.value += 1
        payload = b"v" * TYPING_UP
        while not stop.is_set():
            writer.write(payload)
            await reader.readexactly(TYPING_DOWN)
            carried.value += TYPING_UP + TYPING_DOWN  # one writer per value: this process
            await asyncio.sleep(TYPING_PERIOD)
    finally:
        writer.close()
        host_transport.close()


def _worker(port: int, numbers: range, joined: Synchronized[int], carried: Synchronized[int],
            done: Synchronized[int]) -> None:
    async def run() -> None:
        stop = asyncio.Event()
        tasks = []
        for start in range(numbers.start, numbers.stop, 25):  # in batches on a loaded machine
            tasks += [asyncio.ensure_future(_pair(port, n, stop, joined, carried))
                      for n in range(start, min(start + 25, numbers.stop))]
            await asyncio.sleep(0.05)
        while not done.value:
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


def _busy_and_softirq() -> tuple[float, float]:
    """Seconds the whole machine was busy (all but idle and iowait), and in softirq."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK, softirq / TICK


def _kworkers() -> float:
    """CPU seconds of every ``kworker`` thread so far."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            name, rest = text.split(" (", 1)[1].split(") ", 1)
            if name.startswith("kworker"):
                parts = rest.split()
                total += (int(parts[11]) + int(parts[12])) / TICK
    return total


def measure(kind: str, pairs: int, seconds: float, workers: int) -> dict[str, float]:
    """One run: a relay process of ``kind`` under ``pairs`` typing pairs."""
    relay = subprocess.Popen([sys.executable, __file__, "--serve", kind],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert relay.stdout is not None
        port = int(relay.stdout.readline())
        joined = multiprocessing.Value("q", 0)
        done = multiprocessing.Value("q", 0)
        counters = [multiprocessing.Value("q", 0, lock=False) for _ in range(workers)]
        share = -(-pairs // workers)
        procs = [multiprocessing.Process(target=_worker, args=(
            port, range(i * share, min(pairs, (i + 1) * share)), joined, counters[i], done))
            for i in range(workers)]
        for proc in procs:
            proc.start()
        for _ in range(600):  # every pair joined (or 60 s)
            if joined.value >= pairs:
                break
            time.sleep(0.1)
        time.sleep(1.0)

        def sample() -> tuple[float, ...]:
            busy, soft = _busy_and_softirq()
            gen = sum(cpu_seconds(p.pid) for p in procs if p.pid is not None)
            return (time.monotonic(), cpu_seconds(relay.pid), busy, soft, _kworkers(), gen,
                    float(sum(c.value for c in counters)))

        first = sample()
        time.sleep(seconds)
        last = sample()
        done.value = 1
        for proc in procs:
            proc.join(30)
    finally:
        relay.terminate()
        relay.wait(30)
    wall, relay_cpu, busy, soft, kworkers, gen, carried = (
        b - a for a, b in zip(first, last, strict=True))
    mbit = carried * 8 / wall / 1e6
    return {"joined": joined.value, "mbit": mbit, "relay": 100 * relay_cpu / wall,
            "kworkers": 100 * kworkers / wall, "softirq": 100 * soft / wall,
            "outside": 100 * (busy - gen) / wall, "generators": 100 * gen / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=["kernel", "userspace"], help=argparse.SUPPRESS)
    parser.add_argument("--kinds", default="userspace,kernel")
    parser.add_argument("--pairs", default="100,500")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2,
                        help="load-generator processes (default 2)")
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs of each kind")
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    print("| kind | pairs | joined | Mbit/s | relay CPU % | relay % per 10 Mbit/s | "
          "kworkers % | softirq % | machine busy − generators % (per 10 Mbit/s) | "
          "generators % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.runs):
        for pairs in [int(x) for x in args.pairs.split(",")]:
            for kind in args.kinds.split(","):
                r = measure(kind, pairs, args.seconds, args.workers)
                per = 10 / r["mbit"] if r["mbit"] else float("nan")
                print(f"| {kind} | {pairs} | {r['joined']:.0f} | {r['mbit']:.2f} | "
                      f"{r['relay']:.1f} | **{r['relay'] * per:.2f}** | {r['kworkers']:.1f} | "
                      f"{r['softirq']:.1f} | {r['outside']:.1f} ({r['outside'] * per:.1f}) | "
                      f"{r['generators']:.1f} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
