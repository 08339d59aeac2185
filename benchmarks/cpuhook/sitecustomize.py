"""Thread CPU per call of chosen functions inside a running host, for finding where a round's
time goes (docs/performance.md, "Issue 16, fourteenth session").

Put this folder first on ``PYTHONPATH`` of a benchmark that starts a host (its host inherits
the environment) and name the functions in ``RDESK_CPU_HOOK``: comma-separated
``module:Qualified.name`` entries, e.g.::

    export RDESK_CPU_HOOK="rdesk.host.video.encoder:H264Encoder.encode"
    PYTHONPATH=benchmarks/cpuhook:. python benchmarks/bench_fidelity.py --case photo ...

After ``RDESK_CPU_HOOK_DELAY`` seconds (default 3: past the start-up) each function is
wrapped to add up ``time.thread_time_ns`` around its calls (CPU of the calling thread, not
waits); every second the totals are written to ``RDESK_CPU_HOOK_OUT`` (default
``/tmp/rdesk-cpuhook.txt``), one line a function, most CPU first. Only a process run as
``rdesk ... host`` is touched. References taken before the wrap (a bound method kept as a
callback, a name imported into another module) are not counted: name the function where it
is looked up. Synchronous functions only: a coroutine's CPU would be its creation alone.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_totals: dict[str, list[int]] = {}


def _wrap(entry: str) -> None:
    module_name, _, qualified = entry.strip().partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualified.split(".")
    for part in path:
        owner = getattr(owner, part)
    inner: Callable[..., Any] = getattr(owner, name)
    total = _totals.setdefault(qualified, [0, 0])

    @functools.wraps(inner)
    def counted(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time_ns()
        try:
            return inner(*args, **kwargs)
        finally:
            total[0] += time.thread_time_ns() - started
            total[1] += 1

    setattr(owner, name, counted)


def _run(entries: list[str], delay: float, out: str) -> None:
    time.sleep(delay)
    for entry in entries:
        try:
            _wrap(entry)
        except (ImportError, AttributeError, ValueError) as exc:
            print(f"cpuhook: cannot count {entry}: {exc}", file=sys.stderr)
    while True:
        time.sleep(1.0)
        lines = [f"{name} {ns / 1e6:.1f} ms in {calls} calls, "
                 f"{ns / 1e3 / max(calls, 1):.1f} us a call"
                 for name, (ns, calls) in sorted(_totals.items(), key=lambda kv: -kv[1][0])]
        with open(out + ".part", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(out + ".part", out)


if os.environ.get("RDESK_CPU_HOOK") and "host" in sys.argv[1:]:
    threading.Thread(
        target=_run, daemon=True, name="cpuhook",
        args=(os.environ["RDESK_CPU_HOOK"].split(","),
              float(os.environ.get("RDESK_CPU_HOOK_DELAY", "3")),
              os.environ.get("RDESK_CPU_HOOK_OUT", "/tmp/rdesk-cpuhook.txt"))).start()
