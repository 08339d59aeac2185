"""The host killed with SIGKILL and started again (issue 18).

A real ``rdesk host`` process on a fixed port with an audit log and session recordings; the
desktop viewer's network side (:class:`~rdesk.client.tk.worker.Worker`, what ``rdesk
connect`` runs, without its window) reconnects by itself to the restarted host, which has the
same key, and to nothing else. Then the host is killed again and again while viewers come and
go, and every file it writes is checked whole: the audit log line by line, each recording up
to its last complete record, the certificate and key, the password hash, and the viewer's
known_hosts. Counts only: no time is asserted.
"""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from rdesk.client.connection import connect
from rdesk.client.known_hosts import KnownHosts
from rdesk.client.tk.options import ViewerOptions
from rdesk.client.tk.worker import Worker
from rdesk.host.security.passwords import PasswordStore
from rdesk.host.security.tls import host_key_fingerprint
from rdesk.recording.format import Kind, read_recording
from tests.hostproc import PASSWORD, HostProcess, store_test_password
from tests.xserver import Xvfb, wait_until

#: Kill-and-restart rounds while viewers log in and out.
ROUNDS = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _posted(events: queue.Queue[tuple[Any, ...]], kind: str) -> tuple[Any, ...]:
    """The next event of ``kind`` the worker posted (others are skipped), within 90 s."""
    while True:
        event = events.get(timeout=90)
        if event[0] == "fatal":
            raise AssertionError(f"the viewer gave up: {event}")
        if event[0] == kind:
            return event


def _logins(host: HostProcess) -> threading.Thread:
    """A thread logging viewers in and out until the host goes (the round's kill lands in
    the middle of their audit lines and recordings)."""

    async def run() -> None:
        while True:
            try:
                conn = await connect(host.url, PASSWORD, known_hosts=None,
                                     pinned=host.fingerprint, timeout=5)
                await conn.close()
            except Exception:  # the host was killed under us: expected
                return

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    return thread


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.timeout(300)
def test_a_killed_host_restarts_viewers_come_back_and_no_file_is_half_written(
    xvfb: Xvfb, tmp_path: Path
) -> None:
    config = tmp_path / "host-config"
    store_test_password(config)
    audit, records = tmp_path / "audit.jsonl", tmp_path / "recordings"
    flags = ("--audit-log", str(audit), "--record", str(records))
    host = HostProcess.start(xvfb.display, tmp_path, *flags, port=_free_port(),
                             config_dir=config, password=None)
    pinned = host.fingerprint
    known_hosts = tmp_path / "viewer" / "known_hosts"
    events: queue.Queue[tuple[Any, ...]] = queue.Queue()
    worker = Worker(
        ViewerOptions(url=host.url, known_hosts=known_hosts, password=lambda: PASSWORD,
                      accept_new=True),
        post=lambda *event: events.put(event), on_update=lambda rects: None)
    worker.start()
    try:
        first = _posted(events, "connected")[1]
        assert first.host_fingerprint == pinned
        for round_ in range(ROUNDS):
            # Viewers come and go; the kill lands after a different number of audit lines
            # each round, in the middle of their writes.
            logins = _logins(host)
            target = _lines(audit) + 3 + 5 * round_
            assert wait_until(lambda t=target: _lines(audit) >= t, 60), (round_, _lines(audit))
            host.kill()
            logins.join(30)
            assert _posted(events, "lost")
            host = host.restart()
            assert host.fingerprint == pinned  # the same key: nothing for the viewer to ask
            again = _posted(events, "connected")[1]
            assert again.host_fingerprint == pinned and again is not first
            first = again
    finally:
        worker.stop()
        host.stop()
    assert not any(event[0] in ("changed_key", "unknown_key") for event in list(events.queue))

    # The audit log: whole lines only, each a JSON object of a known kind.
    lines = audit.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the last line is cut"
    kinds = [json.loads(line)["kind"] for line in lines[:-1]]
    assert kinds.count("auth_success") >= ROUNDS + 1
    # Each recording: its header, then complete records up to where the kill cut it.
    files = sorted(records.glob("*.rdrec"))
    assert len(files) >= ROUNDS + 1
    assert not list(records.glob(".*")), "a temporary file was left"
    for path in files:
        recording = read_recording(path)
        kinds_in = [record.kind for record in recording.records()]
        assert kinds_in and kinds_in[0] is Kind.SCREEN, (path, kinds_in[:3])
    # The host's identity and password, the viewer's known hosts: whole, and the same.
    assert host_key_fingerprint(config / "host.crt") == pinned
    store = PasswordStore.from_hash_file(config / "password")
    assert store.check(PASSWORD)
    assert KnownHosts(known_hosts).lookup("127.0.0.1", host_port(host)) == pinned
    assert not list(config.glob(".*.tmp")) and not list(known_hosts.parent.glob(".*.tmp"))


def host_port(host: HostProcess) -> int:
    return int(host.url.rsplit(":", 1)[1])

