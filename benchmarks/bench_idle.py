"""Host CPU on a still screen, with one viewer connected (issue 2's "costs almost nothing").

Starts Xvfb at 1920x1080, runs ``rdesk host`` as its own process, connects one viewer, waits for
the first full frame, then measures the host process's CPU time (utime + stime from /proc) over
a still period. Prints the median of several runs as % of one core.

    python benchmarks/bench_idle.py [--seconds 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.procs import cpu_seconds, free_port
from rdesk.client.connection import connect
from tests.xserver import Painter, Xvfb

PASSWORD = "benchmark password"


async def one_run(display: str, seconds: float) -> float:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "pw").write_text(PASSWORD + "\n")
    port = free_port()
    host = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp / "cfg"), "host", "--display",
         display, "--bind", "127.0.0.1", "--port", str(port), "--password-file", str(tmp / "pw")],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        assert host.stdout is not None
        fingerprint = ""
        while not fingerprint:
            line = host.stdout.readline()
            if not line:
                raise SystemExit("host did not start")
            if "fingerprint:" in line:
                fingerprint = line.split()[-1]
        conn = await connect(f"wss://127.0.0.1:{port}", PASSWORD, known_hosts=None,
                             pinned=fingerprint)
        await conn.wait_exact(30)
        await asyncio.sleep(1.0)  # let the lossless refreshes and the first safety poll pass
        before, t0 = cpu_seconds(host.pid), time.monotonic()
        await asyncio.sleep(seconds)
        used, elapsed = cpu_seconds(host.pid) - before, time.monotonic() - t0
        await conn.close()
        return 100.0 * used / elapsed
    finally:
        host.terminate()
        host.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with Xvfb(1920, 1080) as xvfb, Painter(xvfb.display, seed=1):
        results = [asyncio.run(one_run(xvfb.display, args.seconds)) for _ in range(args.runs)]
    cpu_model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu_model}; load {os.getloadavg()[0]:.2f}")
    print("| still screen, 1 viewer, 1920x1080 | host CPU, % of one core |")
    print("|---|---:|")
    print(f"| median of {args.runs} runs of {args.seconds:g} s | "
          f"{statistics.median(results):.2f} (runs: {', '.join(f'{r:.2f}' for r in results)}) |")


if __name__ == "__main__":
    main()
