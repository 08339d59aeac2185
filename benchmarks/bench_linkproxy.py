"""What the emulated link (tests/linkproxy.py, in its own process) carries of a plain TCP bulk.

The link benchmarks judge shares of the link's *nominal* rate; this checks that the emulator
delivers that rate at all: a sender writes 64 KiB blocks for ``--seconds``, a sink counts what
arrives, and the share is the bytes delivered over first-to-last delivery against the rate.

Usage::

    python benchmarks/bench_linkproxy.py [--rate 10e6] [--delay 0.01] [--seconds 8]
                                         [--proxy-tree DIR]

``--proxy-tree`` runs another checkout's tests/linkproxy.py (e.g. /work/before).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]


async def bulk(tree: Path, rate: float, delay: float, seconds: float) -> float:
    """The share of ``rate`` a plain TCP bulk got through the emulated link."""
    got = {"bytes": 0, "first": 0.0, "last": 0.0}

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            now = time.monotonic()
            got["first"] = got["first"] or now
            got["bytes"] += len(data)
            got["last"] = now
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.linkproxy", str(port), "--rate", str(rate),
         "--delay", str(delay), "--lifetime", str(seconds + 30)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tree)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", int(proc.stdout.readline()))
        block = os.urandom(65536)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            writer.write(block)
            await writer.drain()
        writer.close()
        while time.monotonic() - got["last"] < 1.0:  # until the link's queue drained
            await asyncio.sleep(0.2)
    finally:
        proc.stdin.close()
        proc.wait(10)
        server.close()
    return got["bytes"] * 8 / (got["last"] - got["first"]) / rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10e6, help="bits per second")
    parser.add_argument("--delay", type=float, default=0.01, help="one-way seconds")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--proxy-tree", type=Path,
                        default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    share = asyncio.run(bulk(args.proxy_tree, args.rate, args.delay, args.seconds))
    print(f"| plain TCP bulk, {args.rate / 1e6:g} Mbit/s, {args.delay * 1e3:g} ms, "
          f"proxy of {args.proxy_tree} | {share:.1%} of the rate | load "
          f"{os.getloadavg()[0]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
