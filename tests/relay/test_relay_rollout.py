"""What the Kubernetes manifests rely on (deploy/kubernetes/, docs/deploy.md), with real
processes: two ``rdesk relay`` instances on one Redis behind a layer-4 balancer, and a real
``rdesk host --virtual --relay --no-listen`` whose key lives in its own config directory (the
desktop pod's volume).

- A rolling update: SIGTERM to the instance holding the host drains it; the host moves through
  the balancer to the other instance by itself, and viewers reach it by ID again.
- A desktop pod restarted: a new host process on the same config directory registers under
  the same ID, and a viewer that pinned its key at first contact accepts it.

No wall-clock time is asserted: lines are awaited, attempts counted.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.relaysite import stop
from tests.relay.instances import Balancer, RelayProcess, relay_process, stop_processes

pytestmark = pytest.mark.timeout(240)


class HostProcess:
    """``rdesk host`` through the relay, its output lines collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, config_dir: Path, relay_url: str, fingerprint: str,
                    password: Path) -> HostProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rdesk", "host", "--virtual", "160x120", "--session", "none",
            "--relay", relay_url, "--relay-fingerprint", fingerprint, "--no-listen",
            "--config-dir", str(config_dir), "--password-file", str(password),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return cls(proc)

    async def line(self, pattern: str) -> re.Match[str]:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            assert raw, "rdesk host exited:\n" + "\n".join(self.lines)
            self.lines.append(raw.decode().rstrip())
            if match := re.search(pattern, self.lines[-1]):
                return match

    async def stop(self) -> int:
        await stop(self.proc)
        assert self.proc.returncode is not None
        return self.proc.returncode


async def _snapshot(host_id: str, relay_url: str, fingerprint: str, tmp: Path) -> int:
    """``rdesk snapshot ID`` through the relay; its exit status (0, or 9 for an ID the
    instance does not know yet)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rdesk", "snapshot", host_id, "--relay", relay_url,
        "--relay-fingerprint", fingerprint, "--password-file", str(tmp / "password"),
        "--accept-new", "--config-dir", str(tmp / "viewer"), "-o", str(tmp / "shot.png"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode in (0, 9), err.decode()
    return proc.returncode


async def _reach(host_id: str, relay_url: str, fingerprint: str, tmp: Path) -> int:
    """Snapshots until one succeeds (an instance whose subscription is not live yet answers
    with an unknown ID); the number of tries."""
    for tries in range(1, 9):
        if await _snapshot(host_id, relay_url, fingerprint, tmp) == 0:
            return tries
        await asyncio.sleep(0.25)
    raise AssertionError(f"no viewer reached {host_id}")


async def test_rolling_update_and_pod_restart(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "password").write_text("rollout password\n")
    relays: list[RelayProcess] = []
    host: HostProcess | None = None
    try:
        for _ in range(2):
            relays.append(await relay_process(tmp_path, redis_url))
        fingerprint = relays[0].relay.fingerprint
        balancer = Balancer([each.relay.port for each in relays])
        async with balancer.running():
            url = f"wss://127.0.0.1:{balancer.port}"
            volume = tmp_path / "desktop-volume"
            host = await HostProcess.start(volume, url, fingerprint, tmp_path / "password")
            host_id = (await host.line(r"ID:\s+(\S+)"))[1]
            await host.line(rf"registered as {host_id}")
            holder = balancer.log[0]  # the host's control connection
            assert await _reach(host_id, url, fingerprint, tmp_path) <= 8

            # A rolling update replaces the holder: SIGTERM, drain, the host moves.
            before = len(balancer.log)
            relays[holder].proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(relays[holder].proc.wait(), 60) == 0
            await host.line(rf"registered as {host_id}")
            # (The host's "lost the relay" line, when its watcher saw the gap, names the move.)
            lost = [line for line in host.lines if "lost the relay" in line]
            assert all("moved" in line for line in lost), lost
            # Its first new connection went to the instance left (the balancer skips the
            # stopped one), and viewers reach the host there.
            assert [balancer.log[before]] == [1 - holder], balancer.log[before:]
            assert await _reach(host_id, url, fingerprint, tmp_path) <= 8

            # The pod dies and is started again on the same volume: same key, same ID.
            assert await host.stop() == 0
            host = await HostProcess.start(volume, url, fingerprint, tmp_path / "password")
            assert (await host.line(r"ID:\s+(\S+)"))[1] == host_id
            await host.line(rf"registered as {host_id}")
            # The viewer pinned the host's key at first contact: it would refuse another.
            assert await _reach(host_id, url, fingerprint, tmp_path) <= 8
            assert await host.stop() == 0
    finally:
        if host is not None:
            await host.stop()
        await stop_processes(relays)
