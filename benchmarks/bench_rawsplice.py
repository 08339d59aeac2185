"""The raw splicers' CPU per 10 Mbit/s at a typing-sized load (issue 14's <= 2 % target).

A relay process (this script with ``--serve KIND``) accepts plain TCP connections on
127.0.0.1, reads a 9-byte preamble from each (``V`` or ``H`` and a pair number) and joins each
viewer with its host through :func:`rdesk.relay.rawsplice.open_splicer`, sending the viewer
its go byte. Load-generator processes (``--workers``, so that the load can be offered when one
Python process would be CPU-bound) run the pairs: each viewer sends 96 bytes, waits for the
host's 160-byte answer and sleeps 100 ms (bench_relay's typists, without TLS: the bytes are
opaque to the splicer either way).

Measured over ``--seconds`` after every pair is joined and typing: the relay process's CPU;
what the kernel spends outside it (the kernel splicer's verdict runs in the softirq that
received a segment and its psock workers send, charged to whoever ran then: ``kworker``
threads, the senders' system time, softirq time), as the machine's whole busy time
(/proc/stat) minus the load generators' own CPU — on a shared machine that includes everyone
else's load, so it is an upper bound; and the Mbit/s carried (payload both ways).

The kind ``direct`` is the baseline: the same load generators, each viewer connected straight
to its host (no relay, the host sends the go byte). What a splicer *adds* to the whole machine
is its run's busy time less the direct run's next to it, per 10 Mbit/s (the table's last
column, printed after each round that ran ``direct``).

``--bulk MIB`` instead sends MIB mebibytes through one pair as fast as the viewer can send and
the host read (both in this process, threads): the throughput, the relay's CPU, and the
longest gap between two reads at the host (a stall shows there; the kernel splicer's credit
must not stop a fast direction).

    python benchmarks/bench_rawsplice.py --kinds direct,userspace,kernel --pairs 100,500
    python benchmarks/bench_rawsplice.py --kinds direct,userspace,kernel --bulk 256 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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


class _DirectHost(_Host):
    """A host the viewer reaches with no relay between: it sends the go byte itself."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.write(b"G")


async def _pair(port: int, number: int, stop: asyncio.Event, joined: Synchronized[int],
                carried: Synchronized[int]) -> None:
    """One typing pair through the relay on ``port``, or straight to a host listening there
    (``number`` < 0: the direct baseline)."""
    loop = asyncio.get_running_loop()
    host_transport: asyncio.BaseTransport | None = None
    if number >= 0:
        host_transport, _ = await loop.create_connection(_Host, "127.0.0.1", port)
        assert isinstance(host_transport, asyncio.Transport)
        host_transport.write(b"H" + struct.pack("<Q", number))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if number >= 0:
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
        if host_transport is not None:
            host_transport.close()


def _worker(port: int, numbers: range, joined: Synchronized[int], carried: Synchronized[int],
            done: Synchronized[int]) -> None:
    """Run the pairs ``numbers`` through the relay on ``port`` (0: direct, to hosts of this
    process's own)."""
    async def run() -> None:
        stop = asyncio.Event()
        tasks = []
        server = None
        target = port
        if not port:
            server = await asyncio.get_running_loop().create_server(_DirectHost, "127.0.0.1", 0,
                                                                    backlog=4096)
            target = server.sockets[0].getsockname()[1]
        for start in range(numbers.start, numbers.stop, 25):  # in batches on a loaded machine
            tasks += [asyncio.ensure_future(_pair(target, n if port else -1, stop, joined,
                                                  carried))
                      for n in range(start, min(start + 25, numbers.stop))]
            await asyncio.sleep(0.05)
        while not done.value:
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            server.close()

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


@contextlib.contextmanager
def _relay(kind: str) -> Iterator[tuple[int, int | None]]:
    """A relay process of ``kind``: (its port, its pid); ``direct``: (0, None), no relay."""
    if kind == "direct":
        yield 0, None
        return
    relay = subprocess.Popen([sys.executable, __file__, "--serve", kind],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert relay.stdout is not None
        yield int(relay.stdout.readline()), relay.pid
    finally:
        relay.terminate()
        relay.wait(30)


def measure(kind: str, pairs: int, seconds: float, workers: int) -> dict[str, float]:
    """One run: a relay process of ``kind`` under ``pairs`` typing pairs (or none)."""
    with _relay(kind) as (port, pid):
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
            return (time.monotonic(), cpu_seconds(pid) if pid else 0.0, busy, soft,
                    _kworkers(), gen, float(sum(c.value for c in counters)))

        first = sample()
        time.sleep(seconds)
        last = sample()
        done.value = 1
        for proc in procs:
            proc.join(30)
    wall, relay_cpu, busy, soft, kworkers, gen, carried = (
        b - a for a, b in zip(first, last, strict=True))
    mbit = carried * 8 / wall / 1e6
    return {"joined": joined.value, "mbit": mbit, "relay": 100 * relay_cpu / wall,
            "kworkers": 100 * kworkers / wall, "softirq": 100 * soft / wall,
            "outside": 100 * (busy - gen) / wall, "generators": 100 * gen / wall,
            "busy": 100 * busy / wall}


def bulk(kind: str, mib: int) -> dict[str, float]:
    """``mib`` MiB through one pair of a relay of ``kind`` (or direct), sent and read as fast
    as this process can: MB/s, the relay's CPU %, and the longest gap between two reads."""
    chunk = os.urandom(1 << 20)
    with _relay(kind) as (port, pid):
        listener = None
        if not port:  # direct: the host is a listener of ours
            listener = socket.create_server(("127.0.0.1", 0))
            port = listener.getsockname()[1]
            viewer = socket.create_connection(("127.0.0.1", port))
            host, _ = listener.accept()
        else:
            host = socket.create_connection(("127.0.0.1", port))
            host.sendall(b"H" + struct.pack("<Q", 1))
            viewer = socket.create_connection(("127.0.0.1", port))
            viewer.sendall(b"V" + struct.pack("<Q", 1))
            assert viewer.recv(1) == b"G"

        def send() -> None:
            for _ in range(mib):
                viewer.sendall(chunk)
            viewer.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        cpu0 = cpu_seconds(pid) if pid else 0.0
        start = last = time.monotonic()
        sender.start()
        got, gap, view = 0, 0.0, memoryview(bytearray(1 << 20))
        while n := host.recv_into(view):
            now = time.monotonic()
            got, gap, last = got + n, max(gap, now - last), now
        wall = time.monotonic() - start
        cpu = (cpu_seconds(pid) - cpu0) if pid else 0.0
        sender.join()
        for sock in (viewer, host, *([listener] if listener else [])):
            sock.close()
    assert got == mib << 20, f"{got} bytes of {mib << 20}"
    return {"mbytes": got / wall / 1e6, "relay": 100 * cpu / wall, "gap": 1000 * gap}


def _typing_table(args: argparse.Namespace) -> None:
    print("| kind | pairs | joined | Mbit/s | relay CPU % | relay % per 10 Mbit/s | "
          "kworkers % | softirq % | machine busy − generators % (per 10 Mbit/s) | "
          "generators % | machine busy % | added to the machine per 10 Mbit/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.runs):
        for pairs in [int(x) for x in args.pairs.split(",")]:
            direct: float | None = None  # this round's direct busy % per 10 Mbit/s
            for kind in args.kinds.split(","):
                r = measure(kind, pairs, args.seconds, args.workers)
                per = 10 / r["mbit"] if r["mbit"] else float("nan")
                if kind == "direct":
                    direct = r["busy"] * per
                added = (f"**{r['busy'] * per - direct:.1f}**" if direct is not None
                         and kind != "direct" else "")
                print(f"| {kind} | {pairs} | {r['joined']:.0f} | {r['mbit']:.2f} | "
                      f"{r['relay']:.1f} | **{r['relay'] * per:.2f}** | {r['kworkers']:.1f} | "
                      f"{r['softirq']:.1f} | {r['outside']:.1f} ({r['outside'] * per:.1f}) | "
                      f"{r['generators']:.1f} | {r['busy']:.1f} ({r['busy'] * per:.1f}) | "
                      f"{added} |", flush=True)


def _bulk_table(args: argparse.Namespace) -> None:
    print("| kind | MiB | MB/s | relay CPU % | longest gap between reads, ms |")
    print("|---|---|---|---|---|")
    for _ in range(args.runs):
        for kind in args.kinds.split(","):
            r = bulk(kind, args.bulk)
            print(f"| {kind} | {args.bulk} | {r['mbytes']:.0f} | {r['relay']:.0f} | "
                  f"{r['gap']:.1f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=["kernel", "userspace"], help=argparse.SUPPRESS)
    parser.add_argument("--kinds", default="direct,userspace,kernel",
                        help="direct (no relay: the baseline), userspace, kernel")
    parser.add_argument("--pairs", default="100,500")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2,
                        help="load-generator processes (default 2)")
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs of each kind")
    parser.add_argument("--bulk", type=int, metavar="MIB",
                        help="one bulk transfer of MIB MiB per kind and run, not typing pairs")
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    if args.bulk:
        _bulk_table(args)
    else:
        _typing_table(args)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
