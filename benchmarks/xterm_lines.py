"""Feed a terminal text at a fixed rate: the xterm scrolling workload of bench_fidelity.py.

    python benchmarks/xterm_lines.py CONTROL_DIR [--rate 30] [--seconds 8] [--seed 16] [--colour]

Run inside a real ``xterm``. Prints a screenful of lines at once (so every later line
scrolls), writes ``CONTROL_DIR/ready``, waits for ``CONTROL_DIR/go``, then prints ``--rate``
lines a second for ``--seconds`` (log-like lines of varying length, deterministic from the
seed), writes the monotonic time its last line was flushed to ``CONTROL_DIR/stopped`` and
sleeps until killed, so the terminal stays as it is. With ``--colour`` every word is in one
of the terminal's 256 colours (antialiased, that is far more than a flat picture's colours:
the tests' way to make a terminal's text go lossy).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

WORDS = ("request", "served", "cache", "miss", "hit", "worker", "queue", "flush", "GET", "POST",
         "/api/v1/items", "200", "404", "503", "ms", "bytes", "user", "session", "token", "retry",
         "connect", "timeout", "index", "commit", "rollback", "ok", "warn", "error", "debug")


def line(rng: random.Random, n: int, colour: bool = False) -> str:
    """One log-like line: a counter, a clock-like field and a run of words (each in a random
    one of 256 colours if ``colour``)."""
    picked = [rng.choice(WORDS) for _ in range(rng.randrange(3, 40))]
    if colour:
        picked = [f"\x1b[38;5;{rng.randrange(256)}m{w}\x1b[0m" for w in picked]
    words = " ".join(picked)
    return f"{n:06d} 12:{n // 60 % 60:02d}:{n % 60:02d}.{rng.randrange(1000):03d} {words}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("control", type=Path)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--colour", action="store_true", help="words in 256 colours")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n = 0
    for _ in range(120):  # more than a screenful
        print(line(rng, n, args.colour))
        n += 1
    sys.stdout.flush()
    (args.control / "ready").write_text("ready\n")
    while not (args.control / "go").exists():
        time.sleep(0.01)
    interval = 1.0 / args.rate
    start = time.monotonic()
    next_at = last = start
    while time.monotonic() - start < args.seconds:
        print(line(rng, n, args.colour), flush=True)
        last = time.monotonic()
        n += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    (args.control / "stopped").write_text(f"{last!r}\n")
    while True:
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main())
