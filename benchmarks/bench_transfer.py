"""Benchmark file transfer: host-side throughput, loopback throughput, typing during a transfer.

Three measurements, each on real parts:

- ``host-side``: the host's transfer room alone (rdesk/host/transfer/room.py) fed the
  binary ``xfer_data`` chunks of an upload (of the largest size, which the pacer picks on a
  fast link) as they come off the wire: the codec, SHA-256, credit, ``write`` into a real
  file in the transfer folder, fsync and link. No network: what the host spends per byte.
- ``loopback``: the real ``rdesk put`` / ``rdesk get`` (their own process) against a real host
  over real TLS websockets on 127.0.0.1, until the host confirmed the SHA-256 / the file is
  verified and linked (both processes on the same 2 cores).
- ``typing``: the input-to-pixels latency of bench_latency.py (a key sent, the recorder window
  repaints, the update arrives) on the same connection, idle and while an upload runs on it.

Usage::

    python benchmarks/bench_transfer.py [--size-mb 200] [--keys 60] [--dir DIR]
                                        [--host-only | --link-only] [--links 10,2]
                                        [--directions upload,download] [--tree DIR]

``--dir`` puts the transfer folder (and the source files) on a given disk; default: a
temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# ``--tree DIR`` measures another checkout's rdesk (e.g. /work/before) with this script, so
# before and after run the same measurement; read before anything of rdesk is imported.
sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv[:-1]
                else str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_latency import StampedRecorder, _close, _pct, recorder_next_colour
from benchmarks.injecting import Injectors
from rdesk.client.connection import connect
from rdesk.client.transfer import Transfers
from rdesk.host.transfer.room import TransferRoom
from rdesk.protocol import codec
from rdesk.protocol.access import Access
from rdesk.protocol.transfer import CHUNK, Sending, XferCredit, XferPut
from tests.e2e.conftest import PASSWORD, HostThread
from tests.xserver import Xvfb

try:
    from rdesk.host.transfer.policy import TransferPolicy
except ImportError:  # a tree from before c898f23 (--tree): the policy lived in room.py
    from rdesk.host.transfer.room import TransferPolicy

__all__ = ["main"]

_TREE = sys.path[0]  # the checkout measured


def _source(path: Path, size: int) -> Path:
    with open(path, "wb") as file:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            file.write(block)
    return path


async def host_side(size: int, work: Path) -> tuple[float, float]:
    """(wall MB/s, MB per CPU second) of the host room storing an upload whose frames are
    already encoded; the CPU is the process's, every thread (the hashing worker) counted."""
    folder = work / "host-side"
    data = os.urandom(size)
    flow = Sending(1, size)
    flow.credit = 1 << 30  # the frames are made up front: credit is the room's, below
    frames = []
    for offset in range(0, size, CHUNK):
        frames.append(codec.encode(flow.chunk(data[offset:offset + CHUNK])))
    end = codec.encode(flow.end())
    sent: list[object] = []

    async def send(message: object) -> None:
        sent.append(message)

    room = TransferRoom(TransferPolicy(folder=folder, disk_reserve=0, max_file=size,
                                       max_session=size), 1, "bench", Access.CONTROL, send,
                        lambda kind, **fields: None)
    start, cpu = time.perf_counter(), time.process_time()
    await room.handle(XferPut(1, "bench.bin", size))
    for frame in [*frames, end]:
        await room.handle(codec.decode(frame))  # type: ignore[arg-type]
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert any(isinstance(m, XferCredit) for m in sent)
    stored = folder / "bench.bin"
    assert stored.stat().st_size == size
    stored.unlink()
    await room.close()
    return size / elapsed / 1e6, size / cpu / 1e6


def loopback(size: int, work: Path, display: str) -> tuple[float, float]:
    """(upload MB/s, download MB/s): the real ``rdesk put`` / ``rdesk get`` in their own
    process against a real host in this one, timed from the CLI's start to its exit 0 (so
    Python's start-up, TLS and login are counted in)."""
    inbox = work / "inbox"
    thread = HostThread(display, work / "host-loop", transfer_dir=inbox,
                        transfer_max_session=4 * size)
    (work / "host-loop").mkdir()
    host = thread.start()
    source = _source(work / "up.bin", size)
    cli = [sys.executable, "-m", "rdesk", "--config-dir", str(work / "viewer")]
    login = ["--fingerprint", host.fingerprint, "--password-file", str(host.password_file)]
    try:
        start = time.perf_counter()
        subprocess.run([*cli, "put", host.url, str(source), *login], check=True,
                       capture_output=True)
        up = size / (time.perf_counter() - start) / 1e6
        start = time.perf_counter()
        subprocess.run([*cli, "get", host.url, "up.bin", "-o", str(work / "down.bin"), *login],
                       check=True, capture_output=True)
        down = size / (time.perf_counter() - start) / 1e6
        assert (work / "down.bin").stat().st_size == size
    finally:
        thread.stop()
    for path in (source, work / "down.bin", inbox / "up.bin"):
        path.unlink(missing_ok=True)
    return up, down


class _Link:
    """tests/linkproxy.py in its own process (so the viewer's CPU work cannot delay it)."""

    def __init__(self, port: int, rate: float, delay: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.linkproxy", str(port), "--rate", str(rate),
             "--delay", str(delay), "--lifetime", "600"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        #: Bytes the link carried host→viewer and viewer→host (TLS records, websocket frames
        #: and what they carry; not TCP/IP headers), once closed.
        self.down_bytes = self.up_bytes = 0

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        down, up = self.proc.stdout.readline().split()
        self.down_bytes, self.up_bytes = int(down), int(up)
        self.proc.wait(10)


async def typing(keys: int, work: Path, size: int, during: str,
                 link: tuple[float, float] | None = None) -> tuple[list[float], float, float]:
    """Key-to-pixels latencies (s), with a transfer running on the same connection or not;
    the transfer's payload MB/s meanwhile (0 when idle); and the link's bytes in the
    transfer's direction per payload byte sent (0 without a link or a transfer: its framing,
    TLS, and what else shares that direction: keys up, screen updates down).
    ``during``: ``""`` (idle), ``"upload"`` or ``"download"`` (looped, ``size`` bytes each).
    ``link``: (bits/s, one-way delay) of an emulated link between the viewer and the host."""
    with Xvfb(1280, 720) as xvfb, StampedRecorder(xvfb.display, flash=True,
                                                   geometry="200x100+500+300",
                                                   no_motion=True) as recorder:
        make_injector = Injectors()

        tag = f"{during or 'idle'}-{link}"
        tmp = work / f"host-typing-{tag}"
        tmp.mkdir()
        inbox = work / f"inbox-typing-{tag}"
        inbox.mkdir(mode=0o700)
        thread = HostThread(xvfb.display, tmp, injector=make_injector, transfer_dir=inbox,
                            transfer_max_session=1 << 40)
        host = thread.start()
        proxy = _Link(host.port, *link) if link is not None else None
        url = f"wss://127.0.0.1:{proxy.port}" if proxy is not None else host.url
        x, y, w, h = recorder.geometry
        probe = (x + w // 2, y + h // 2)
        source = work / "typing.bin"
        if during == "upload":
            _source(source, size)
        elif during == "download":
            source = _source(inbox / "d.bin", size)
        latencies: list[float] = []
        moved = [0, 0.0]
        wire = 0
        conn = await connect(url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        try:
            await conn.wait_exact(60)
            arrived: dict[str, Any] = {}
            event = asyncio.Event()

            def on_update(_rects: list[tuple[int, int, int, int]]) -> None:
                want = arrived.get("want")
                if want and "at" not in arrived:
                    pixel = conn.framebuffer.image.getpixel(probe)
                    assert isinstance(pixel, tuple)
                    if _close(pixel, want):
                        arrived["at"] = time.monotonic()
                        event.set()

            conn.on_update(on_update)

            async def transfers() -> None:
                files = Transfers(conn)
                start = time.perf_counter()
                n = 0

                def progress(done: int, _total: int) -> None:
                    moved[0], moved[1] = n * size + done, time.perf_counter() - start

                while True:
                    if during == "upload":
                        await files.put(source, f"t{n}.bin", progress)
                        (inbox / f"t{n}.bin").unlink()
                    else:
                        await files.get("d.bin", work / f"got{n}.bin", progress)
                        (work / f"got{n}.bin").unlink()
                    n += 1

            pump = asyncio.create_task(transfers()) if during else None
            await asyncio.sleep(0.5)
            for i in range(keys + 5):
                await asyncio.sleep(random.uniform(0.2, 0.3))
                arrived.clear()
                arrived["want"] = recorder_next_colour(i)
                event.clear()
                sent = time.monotonic()
                await conn.key(0x61, True)
                await asyncio.wait_for(event.wait(), 10)
                await conn.key(0x61, False)
                if i >= 5:
                    latencies.append(arrived["at"] - sent)
            if pump is not None:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        finally:
            await conn.close()
            thread.stop()
            if proxy is not None:
                proxy.close()
                wire = proxy.down_bytes if during == "download" else proxy.up_bytes
            make_injector.close()
            source.unlink(missing_ok=True)
            for part in work.glob(".got*"):  # a get cancelled mid-file
                part.unlink()
    rate = moved[0] / moved[1] / 1e6 if moved[1] else 0.0
    # Sent, not all delivered: the bytes in flight at the end (a budget, ~50 KB of ~12 MB)
    # make this a little low.
    overhead = wire / moved[0] if moved[0] and wire else 0.0
    return latencies, rate, overhead


#: The emulated links: (bits/s, one-way delay), each way.
_LINKS = {"10 Mbit/s, 10 ms": (10e6, 0.01), "2 Mbit/s, 40 ms": (2e6, 0.04)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--link-only", action="store_true",
                        help="only the typing rows over the emulated link")
    parser.add_argument("--host-only", action="store_true",
                        help="only the host-side store row")
    parser.add_argument("--links", default="10,2",
                        help="emulated links to run, of 10 (Mbit/s, 10 ms) and 2 (Mbit/s, 40 ms)")
    parser.add_argument("--directions", default="upload,download",
                        help="transfers to type during, of upload and download")
    parser.add_argument("--tree", type=Path, default=None,
                        help="measure the rdesk of this checkout (default: this script's)")
    args = parser.parse_args(argv)
    size = args.size_mb << 20
    print(f"# file transfer, {args.size_mb} MiB, loopback TLS, rdesk from {_TREE}")
    print(f"# {platform.node()} {platform.machine()} Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        if not args.link_only:
            side, per_cpu = asyncio.run(host_side(size, work))
            print(f"| host-side store (decode, SHA-256, write, fsync) | {side:.0f} MB/s "
                  f"({per_cpu:.0f} MB per CPU second) |", flush=True)
            if args.host_only:
                return 0
            with Xvfb(640, 480) as xvfb:
                up, down = loopback(size, work, xvfb.display)
            print(f"| loopback upload, until the host confirmed the SHA-256 | {up:.0f} MB/s |")
            print(f"| loopback download, verified and linked | {down:.0f} MB/s |")
        print("| typing, link | median ms | p95 ms | max ms | transfer MB/s meanwhile "
              "| payload share of link rate | wire share |")
        print("|---|---|---|---|---|---|---|")
        # On an emulated link one file of the 100 MiB runs through the keys (at
        # 1.25 MB/s it does not end): the rate is the pacer's, not that of files starting.
        links: list[tuple[str, tuple[float, float] | None, int]] = [
            ("loopback", None, min(size, 64 << 20))]
        links += [(name, link, 100 << 20) for name, link in _LINKS.items()
                  if name.split(" ")[0] in args.links.split(",")]
        for name, link, file_size in links:
            if args.link_only and link is None:
                continue
            for during in ("", *args.directions.split(",")):
                values, rate, overhead = asyncio.run(
                    typing(args.keys, work, file_size, during, link))
                ms = [v * 1000 for v in values]
                article = "an" if during == "upload" else "a"
                label = f"{name}, {f'during {article} {during}' if during else 'idle'}"
                # The link's rate is the emulated one (bits/s) each way. An upload shares its
                # direction with the keys only; a download with the screen updates (the
                # typing's repaints: small). Payload: the file's bytes. Wire: the payload
                # share times the link's bytes that way per payload byte (chunk headers,
                # websocket frames, TLS records, what else went that way and the handshake;
                # the proxy does not count TCP/IP headers).
                share = wire_share = "-"
                if link is not None and during:
                    share = f"{rate * 8e6 / link[0]:.1%}"
                    wire_share = f"{rate * overhead * 8e6 / link[0]:.1%}"
                print(f"| {label} | {statistics.median(ms):.1f} | {_pct(ms, 0.95):.1f} | "
                      f"{max(ms):.1f} | {rate:.2f} | {share} | {wire_share} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
