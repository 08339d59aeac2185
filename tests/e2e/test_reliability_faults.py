"""Dead viewers under a live one (issue 18): a stopped process, a link gone without a FIN.

A real host on Xvfb, with shared control, and three real viewers:

- ``stopped``: ``rdesk do ... keydown shift pause 300``, a process holding Shift, then
  SIGSTOPped: its socket stays open, nothing is read or acknowledged;
- ``cut``: the same holding Ctrl, run in a network namespace joined to the host by a veth, whose
  link is then set down: no FIN, no RST, packets simply stop;
- the watcher, this test's own Connection, counting the updates it gets.

The issue speaks of a 30 s stop. The host drops a viewer that leaves an update unacknowledged
for ``stall_timeout`` (30 s by default; 6 s here), and releases a silent holder's keys after
``held_input_timeout`` (3 s): a stop longer than both is what a 30 s stop is, so the test
stops the viewer until the host has dropped it and checks what that triggers. Events are
counted; no time is asserted.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rdesk.client.connection import Connection, connect
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.relay.test_relay_netns import _ip
from tests.xserver import Painter, Recorder, Xvfb, pressed_keys, wait_until

TAG = f"rf{os.getpid() % 100000}"
HOST_SIDE, NS_ADDR, HOST_ADDR = f"{TAG}h", "10.244.7.2", "10.244.7.1"
STALL = 6.0
#: Most paints while waiting for the host to drop both dead viewers (each is seen first).
MAX_PAINTS = 600
#: Seconds between two paints. What the test waits for is the host's own timers (the held-input
#: release, the stall timeout): unpaced, 400 paints took under 6 s on an idle machine and the
#: wait ended before the host's STALL did. Paced, MAX_PAINTS paints span at least 30 s.
PACE = 0.05
#: How much this process (the host, its encoders, the watcher) may grow meanwhile.
RSS_SLACK_KIB = 96 * 1024


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace whose ``eth0`` (10.244.7.2) reaches this one's 10.244.7.1."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and ip netns")
    _ip("netns", "add", TAG)
    try:
        _ip("-n", TAG, "link", "set", "lo", "up")
        _ip("link", "add", HOST_SIDE, "type", "veth", "peer", "name", "eth0", "netns", TAG)
        _ip("addr", "add", f"{HOST_ADDR}/30", "dev", HOST_SIDE)
        _ip("-n", TAG, "addr", "add", f"{NS_ADDR}/30", "dev", "eth0")
        _ip("link", "set", HOST_SIDE, "up")
        _ip("-n", TAG, "link", "set", "eth0", "up")
        yield TAG
    finally:
        subprocess.run(["ip", "link", "del", HOST_SIDE], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", TAG], capture_output=True, timeout=10)


def _rss_kib() -> int:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match
    return int(match.group(1))


def _holder(url: str, host: RunningHost, key: str, tmp: Path,
            prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """A real viewer process that presses ``key`` and keeps it down."""
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "rdesk", "--config-dir", str(tmp / f"v-{key}"), "do",
         url, *host.viewer_args(), "keydown", key, "pause", "300"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def _pressed(name: str) -> Callable[[dict[str, object]], bool]:
    return lambda e: e["type"] == "key_press" and e["keysym_name"] == name


def _released(name: str) -> Callable[[dict[str, object]], bool]:
    return lambda e: e["type"] == "key_release" and e["keysym_name"] == name


class Screen:
    """Paints and checks that the watcher sees each paint: the screen keeps changing (so
    the dead viewers' updates stay unacknowledged) and the watcher's updates are counted."""

    def __init__(self, painter: Painter, watcher: Connection) -> None:
        self.painter, self.watcher = painter, watcher
        self.paints = 0
        self.updates = 0
        self.rss_peak = 0
        watcher.on_update(lambda rects: self._count())

    def _count(self) -> None:
        self.updates += 1

    async def until(self, done: Callable[[], bool], what: str) -> None:
        for _ in range(MAX_PAINTS):
            if done():
                return
            colour = (self.paints * 37 % 256, 255 - self.paints % 256, 90)
            await asyncio.to_thread(self.painter.rect, 0, 0, 64, 64, colour)
            self.paints += 1
            for _ in range(500):
                if self.watcher.framebuffer.image.getpixel((32, 32)) == colour:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"paint {self.paints} never reached the watcher")
            self.rss_peak = max(self.rss_peak, _rss_kib())
            await asyncio.sleep(PACE)
        raise AssertionError(f"{what}: not after {MAX_PAINTS} paints")


@pytest.mark.timeout(240)
async def test_a_stopped_and_a_cut_viewer_are_dropped_while_the_watcher_keeps_up(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], injectors: Callable[..., object],
    netns: str, tmp_path: Path,
) -> None:
    host = host_factory(xvfb.display, injector=injectors, shared_control=True,
                        stall_timeout=STALL, bind="0.0.0.0")
    # The recorder keeps the focus in a corner; the painter paints the top left.
    with Painter(xvfb.display, seed=3) as painter, \
            Recorder(xvfb.display, geometry="64x64+560+400") as recorder:
        events: list[tuple[str, dict[str, object]]] = []

        async def listen() -> None:
            host.server._on_event = lambda kind, fields: events.append((kind, dict(fields)))

        host.call(listen())
        watcher = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        screen = Screen(painter, watcher)
        rss_before = _rss_kib()
        stopped = _holder(host.url, host, "shift", tmp_path)
        cut: subprocess.Popen[str] | None = None
        try:
            await asyncio.to_thread(recorder.wait_for, _pressed("Shift_L"), 60)
            (stopped_id,) = set(host.server.viewers) - {watcher.viewer_id}
            os.kill(stopped.pid, signal.SIGSTOP)
            # One keyboard: the next holder's first key would release Shift anyway, so the
            # second fault starts once the host has let go of the stopped viewer's key (after
            # held_input_timeout of silence), while the stopped viewer is still connected.
            await screen.until(lambda: any(map(_released("Shift_L"), recorder.events())),
                               "the stopped viewer's Shift was not released")
            assert len(host.server.viewers) == 2
            cut = _holder(f"wss://{HOST_ADDR}:{host.port}", host, "ctrl", tmp_path,
                          prefix=("ip", "netns", "exec", netns))
            await asyncio.to_thread(recorder.wait_for, _pressed("Control_L"), 60)
            _ip("-n", netns, "link", "set", "eth0", "down")  # no FIN: the link just goes
            both_dead_at = screen.paints
            await screen.until(lambda: set(host.server.viewers) == {watcher.viewer_id},
                               "the dead viewers were not dropped")
            # The watcher saw every paint, with at least one update each, while they died.
            assert screen.paints > both_dead_at and screen.updates >= screen.paints
            assert screen.rss_peak - rss_before <= RSS_SLACK_KIB, (rss_before, screen.rss_peak)
            assert any(map(_released("Control_L"), recorder.events()))
            assert wait_until(lambda: pressed_keys(xvfb.display) == [], 10)

            # The host closed it with the reason...
            reason = f"viewer acknowledged nothing for {STALL:g} s"
            assert ("disconnect", stopped_id, reason) in [
                (kind, f.get("viewer"), f.get("reason")) for kind, f in events], events
            # ...and, resumed, the stopped viewer exits with one line: the host's reason when
            # its closing frame fitted in the stopped process's socket buffer, else (the host
            # reset the connection after its close timeout) that the connection was lost.
            os.kill(stopped.pid, signal.SIGCONT)
            _, err = await asyncio.to_thread(stopped.communicate, timeout=60)
            assert stopped.returncode != 0
            assert err.strip().splitlines() == [err.strip()], err
            assert reason in err or "connection lost" in err, err
            assert not watcher.closed.done()
        finally:
            for proc in (stopped, cut):
                if proc is not None and proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                    proc.wait(10)
            await watcher.close()
