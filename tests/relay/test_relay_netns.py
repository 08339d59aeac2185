"""A host no viewer can reach, reached through a real relay: three network namespaces.

``world`` runs a real ``python -m rdesk relay`` process; ``host`` and ``viewer`` are each joined
to ``world`` by a veth pair and to nothing else, and ``world`` does not forward, so the viewer
has no route to the host at all — like a host behind NAT, only stricter. The host dials out
to the relay, the viewer asks for its ID, and bytes cross the splice. Needs root and
``ip netns``; skipped otherwise. Nothing is changed outside the namespaces it creates.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TAG = f"rd{os.getpid() % 100000}"
WORLD, HOST, VIEWER = f"{TAG}w", f"{TAG}h", f"{TAG}v"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and ip netns")


@pytest.fixture
def namespaces() -> Iterator[None]:
    """world 10.231.1.1 <-> host 10.231.1.2; world 10.231.2.1 <-> viewer 10.231.2.2."""
    created: list[str] = []
    try:
        for name in (WORLD, HOST, VIEWER):
            try:
                _ip("netns", "add", name)
            except subprocess.CalledProcessError as exc:
                if not created:  # e.g. in a container without CAP_SYS_ADMIN
                    pytest.skip(f"cannot create a network namespace: {exc.stderr.strip()}")
                raise
            created.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        for peer, net in ((HOST, 1), (VIEWER, 2)):
            _ip("-n", WORLD, "link", "add", f"{peer}x", "type", "veth", "peer", "name",
                f"{peer}y", "netns", peer)
            _ip("-n", WORLD, "addr", "add", f"10.231.{net}.1/30", "dev", f"{peer}x")
            _ip("-n", WORLD, "link", "set", f"{peer}x", "up")
            _ip("-n", peer, "addr", "add", f"10.231.{net}.2/30", "dev", f"{peer}y")
            _ip("-n", peer, "link", "set", f"{peer}y", "up")
        yield
    finally:
        for name in reversed(created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def _in(ns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *argv], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)


def _line(proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"exited before {pattern!r}: {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.timeout(120)
def test_a_host_with_no_route_from_the_viewer_is_reached_through_the_relay(
    namespaces: None, tmp_path: Path,
) -> None:
    data = tmp_path / "relay"
    token = subprocess.run(
        [sys.executable, "-m", "rdesk", "relay", "--data-dir", str(data), "token", "create"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()[0]
    relay = _in(WORLD, "-m", "rdesk", "relay", "--bind", "0.0.0.0", "--port", "0",
                "--data-dir", str(data), "--audit-log", str(tmp_path / "audit.jsonl"))
    host = None
    try:
        port = _line(relay, r"listening on wss://0\.0\.0\.0:(\d+)")[1]
        pin = _line(relay, r"fingerprint (SHA256:\S+)")[1]
        host = _in(HOST, "-m", "tests.relay.netns_peer", "host", f"wss://10.231.1.1:{port}",
                   pin, str(tmp_path / "host"), stdin=subprocess.PIPE)
        assert host.stdin is not None
        host.stdin.write(token + "\n")
        host.stdin.flush()
        host_id = _line(host, r"registered (\S+)")[1]
        viewer = _in(VIEWER, "-m", "tests.relay.netns_peer", "viewer",
                     f"wss://10.231.2.1:{port}", pin, host_id, "10.231.1.2")
        out, err = viewer.communicate(timeout=60)
        assert viewer.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["direct"] == "Network is unreachable"
        assert result["pinned"] is True
        assert result["answer"] == {"t": "spliced"}
        assert result["reply"] == "host:across namespaces"
    finally:
        for proc in (host, relay):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    assert relay.returncode == 0
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    register = next(event for event in events if event["kind"] == "register")
    assert register["source"] == "10.231.1.2" and register["id"] == host_id
    rendezvous = next(event for event in events if event["kind"] == "rendezvous")
    assert rendezvous["source"] == "10.231.2.2"
