"""A host behind a real NAT, reached by its ID: network namespaces, iptables MASQUERADE.

Five namespaces: ``public`` runs a real ``rdesk relay`` process; ``home`` (192.168.50.2) runs a
real ``rdesk host --relay`` on the test's Xvfb and sits behind the ``home router``, which
masquerades it onto the public side and forwards nothing inwards; ``viewer`` (192.168.60.2)
sits behind its own masquerading router. The host is unreachable from the viewer — at its
own address (no route) and at its router's public address (nothing listens) — and reachable
through the relay by ID: ``rdesk snapshot`` pixel-exact against what a real X client drew,
``rdesk type`` seen by a real X client. The relay's audit log shows the host's registration
coming from the home router's public address: the NAT was really crossed. Needs root, ``ip``
and ``iptables``; skipped otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import PASSWORD
from tests.relay.test_relay_netns import _ip, _line
from tests.xserver import Painter, Recorder, Xvfb, assert_images_equal

REPO = Path(__file__).resolve().parents[2]
TAG = f"re{os.getpid() % 100000}"
PUBLIC, HOME_NAT, HOME, VIEW_NAT, VIEWER = (f"{TAG}{s}" for s in ("p", "hr", "h", "vr", "v"))
HOST_PORT = 7900


def _can_build_nat() -> str | None:
    """Why the NAT cannot be built here, or ``None``."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def _nat_ns(ns: str, *argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True,
                   timeout=10)


def _veth(a: str, a_if: str, a_addr: str, b: str, b_if: str, b_addr: str) -> None:
    _ip("-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b)
    _ip("-n", a, "addr", "add", a_addr, "dev", a_if)
    _ip("-n", b, "addr", "add", b_addr, "dev", b_if)
    _ip("-n", a, "link", "set", a_if, "up")
    _ip("-n", b, "link", "set", b_if, "up")


@pytest.fixture
def nat() -> Iterator[None]:
    """public 10.240.1.1 | 10.240.2.1; home router 10.240.1.2 / 192.168.50.1 -> home
    192.168.50.2; viewer router 10.240.2.2 / 192.168.60.1 -> viewer 192.168.60.2."""
    reason = _can_build_nat()
    if reason is not None:
        pytest.skip(reason)
    created: list[str] = []
    try:
        for name in (PUBLIC, HOME_NAT, HOME, VIEW_NAT, VIEWER):
            _ip("netns", "add", name)
            created.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        for router, lan, net, wan in ((HOME_NAT, HOME, 50, 1), (VIEW_NAT, VIEWER, 60, 2)):
            _veth(PUBLIC, f"pub{wan}", f"10.240.{wan}.1/24", router, "wan", f"10.240.{wan}.2/24")
            _veth(router, "lan", f"192.168.{net}.1/24", lan, "eth0", f"192.168.{net}.2/24")
            _ip("-n", lan, "route", "add", "default", "via", f"192.168.{net}.1")
            _ip("-n", router, "route", "add", "default", "via", f"10.240.{wan}.1")
            _nat_ns(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            _nat_ns(router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan",
                    "-j", "MASQUERADE")
            # A home router: replies come back in, nothing new does.
            _nat_ns(router, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack",
                    "!", "--ctstate", "ESTABLISHED,RELATED", "-j", "DROP")
        yield
    finally:
        for name in reversed(created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def _in(ns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *argv], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)


def _run_in(ns: str, *argv: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, *argv], cwd=REPO,
                          text=True, capture_output=True, timeout=90,
                          env={**os.environ, **(env or {})})


_PROBE = """
import socket, sys
for address in sys.argv[2:]:
    try:
        socket.create_connection((address, int(sys.argv[1])), timeout=3).close()
        print(address, "connected")
    except OSError as exc:
        print(address, exc.strerror or type(exc).__name__)
"""


def _stop(*procs: subprocess.Popen[str] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@dataclasses.dataclass
class _Running:
    relay: subprocess.Popen[str]
    host: subprocess.Popen[str]
    port: str
    pin: str
    password_file: Path
    audit: Path


@contextlib.contextmanager
def _relay_and_host(tmp_path: Path, xvfb: Xvfb, *relay_flags: str) -> Iterator[_Running]:
    """A real ``rdesk relay --open`` in ``public`` and a real ``rdesk host --relay`` in
    ``home`` on the test's Xvfb; both stopped on the way out."""
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    audit = tmp_path / "relay-audit.jsonl"
    relay = _in(PUBLIC, "-m", "rdesk", "relay", "--bind", "0.0.0.0", "--port", "0", "--open",
                *relay_flags, "--data-dir", str(tmp_path / "relay"), "--audit-log", str(audit))
    host = None
    try:
        port = _line(relay, r"listening on wss://0\.0\.0\.0:(\d+)")[1]
        pin = _line(relay, r"fingerprint (SHA256:\S+)")[1]
        host = _in(HOME, "-m", "rdesk", "--config-dir", str(tmp_path / "host"), "host",
                   "--display", xvfb.display, "--capture", "mss", "--port", str(HOST_PORT),
                   "--password-file", str(password_file),
                   "--relay", f"wss://10.240.1.1:{port}", "--relay-fingerprint", pin)
        yield _Running(relay, host, port, pin, password_file, audit)
    finally:
        _stop(host, relay)


@pytest.mark.timeout(240)
def test_a_host_behind_nat_is_seen_and_controlled_by_id(nat: None, xvfb: Xvfb,
                                                        tmp_path: Path) -> None:
    with _relay_and_host(tmp_path, xvfb) as running:
        host, port, pin = running.host, running.port, running.pin
        password_file, audit = running.password_file, running.audit
        host_id = _line(host, r"ID:\s+(\S+)")[1]
        assert _line(host, r"registered as (\S+)")[1] == host_id

        probe = _run_in(VIEWER, "-c", _PROBE, str(HOST_PORT), "192.168.50.2", "10.240.1.2")
        assert probe.returncode == 0, probe.stderr
        direct = dict(line.split(" ", 1) for line in probe.stdout.splitlines())
        assert direct["192.168.50.2"] != "connected"  # no route to a private address
        assert direct["10.240.1.2"] != "connected"  # the router forwards nothing in

        viewer = ["-m", "rdesk", "--config-dir", str(tmp_path / "viewer")]
        via = ["--relay", f"wss://10.240.2.1:{port}", "--relay-fingerprint", pin,
               "--password-file", str(password_file)]
        with Painter(xvfb.display, seed=11) as painter:
            shot = tmp_path / "shot.png"
            done = _run_in(VIEWER, *viewer, "snapshot", host_id.lower(), *via, "-o", str(shot))
            assert done.returncode == 0, done.stderr
            assert_images_equal(Image.open(shot).convert("RGB"), painter.expected())
        known = (tmp_path / "viewer" / "known_hosts").read_text()
        assert f"{host_id} SHA256:" in known  # pinned under its ID (no port) at first contact

        with Recorder(xvfb.display) as recorder:
            recorder.wait_idle()
            recorder.clear()
            done = _run_in(VIEWER, *viewer, "type", host_id, *via, "through the NAT")
            assert done.returncode == 0, done.stderr
            assert recorder.wait_for_text("through the NAT") == "through the NAT"
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    register = next(event for event in events if event["kind"] == "register")
    assert register["id"] == host_id and register["source"] == "10.240.1.2"  # masqueraded
    sources = {event["source"] for event in events if event["kind"] == "rendezvous"}
    assert sources == {"10.240.2.2"}  # the viewer, masqueraded by its own router
    # Both crossed their NAT to the splice port too: the raw lane, the host's TLS end to end.
    assert {event["lane"] for event in events if event["kind"] == "rendezvous"} == {"raw"}
    assert [e["kind"] for e in events].count("raw_join") == 2


class _Lines:
    """A process's stdout, read in a thread: wait for a line with a bounded deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait(self, pattern: str, timeout: float, what: str) -> re.Match[str]:
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"gave up waiting for {what} ({pattern!r})") from None
            if line is None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"exited before {what}: {err[-2000:]}")
            match = re.search(pattern, line)
            if match:
                return match


def _audit_until(audit: Path, what: str, ok: Callable[[list[dict[str, Any]]], bool],
                 timeout: float) -> list[dict[str, Any]]:
    """The relay's audit events, once ``ok`` holds for them (bounded: fails saying ``what``)."""
    end = time.monotonic() + timeout
    while True:
        events = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
        if ok(events):
            return events
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}: "
                                 f"{[e['kind'] for e in events][-12:]}")
        time.sleep(0.1)


def _forget(router: str) -> None:
    """The router forgets every mapping and, for now, passes nothing (a reboot, a crash of its
    NAT table): its conntrack table flushed, every forwarded packet dropped, and what comes
    to its own public address dropped too (else, the mapping gone, its kernel would answer
    the relay's next packet with a reset, and the relay would not have to notice anything)."""
    _nat_ns(router, "iptables", "-I", "FORWARD", "1", "-j", "DROP")
    _nat_ns(router, "iptables", "-I", "INPUT", "1", "-i", "wan", "-j", "DROP")
    if shutil.which("conntrack") is not None:
        subprocess.run(["ip", "netns", "exec", router, "conntrack", "-F"],
                       capture_output=True, timeout=10)  # exit 1 on an empty table: fine


def _come_back(router: str) -> None:
    """The router forwards again; what it held before is gone (flushed again)."""
    if shutil.which("conntrack") is not None:
        subprocess.run(["ip", "netns", "exec", router, "conntrack", "-F"],
                       capture_output=True, timeout=10)
    _nat_ns(router, "iptables", "-D", "FORWARD", "1")
    _nat_ns(router, "iptables", "-D", "INPUT", "1")


@pytest.mark.timeout(300)
def test_a_host_whose_nat_forgets_it_comes_back_by_the_same_id(nat: None, xvfb: Xvfb,
                                                               tmp_path: Path) -> None:
    """The home router loses its NAT mapping mid-session: the host notices its control
    connection is dead by its heartbeats (the relay's 2 s), reconnects with backoff through
    a new mapping, registers the same ID, and viewers reach it by ID again on both lanes."""
    with _relay_and_host(tmp_path, xvfb, "--heartbeat", "2") as running:
        port, pin = running.port, running.pin
        password_file, audit = running.password_file, running.audit
        said = _Lines(running.host)
        host_id = said.wait(r"ID:\s+(\S+)", 60, "the host's ID")[1]
        said.wait(r"registered as " + re.escape(host_id), 60, "the first registration")
        first = _audit_until(audit, "the registration", lambda ev: any(
            e["kind"] == "register" for e in ev), 30)
        old_source = next(e for e in first if e["kind"] == "register")["source"]

        _forget(HOME_NAT)
        try:
            # Neither end gets a FIN or a reset: the host gives up on the connection when a
            # heartbeat goes unanswered, the relay drops the host after three heartbeats'
            # time without one. The router comes back only once both have noticed.
            said.wait(r"lost the relay .*\(the relay stopped answering heartbeats\); reconnecting",
                      60, "the host to notice by its heartbeats")
            _audit_until(audit, "the relay to drop the silent host", lambda ev: any(
                e["kind"] == "unregister" and e["id"] == host_id for e in ev), 60)
        finally:
            _come_back(HOME_NAT)
        said.wait(r"registered as " + re.escape(host_id), 90,
                  "the host to register again through a new mapping")
        events = _audit_until(audit, "the second registration", lambda ev: sum(
            e["kind"] == "register" and e["id"] == host_id for e in ev) == 2, 30)
        gone = next(e for e in events if e["kind"] == "unregister")
        assert gone["reason"] == "no heartbeat for 6 s", gone  # noticed by silence, not a FIN
        assert old_source == "10.240.1.2"
        assert [e["source"] for e in events if e["kind"] == "register"] == ["10.240.1.2"] * 2

        viewer = ["-m", "rdesk", "--config-dir", str(tmp_path / "viewer")]
        via = ["--relay", f"wss://10.240.2.1:{port}", "--relay-fingerprint", pin,
               "--password-file", str(password_file)]
        with Painter(xvfb.display, seed=12) as painter:
            for lane in ("raw", "ws"):
                shot = tmp_path / f"shot-{lane}.png"
                done = _run_in(VIEWER, *viewer, "snapshot", host_id, *via, "--relay-lane", lane,
                               "-o", str(shot))
                assert done.returncode == 0, done.stderr
                assert_images_equal(Image.open(shot).convert("RGB"), painter.expected())
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    lanes = [e["lane"] for e in events if e["kind"] == "rendezvous"]
    assert lanes == ["raw", "ws"]
