"""File transfer end to end: a real host on Xvfb, the real ``rdesk put/get/ls`` CLI, TLS on
127.0.0.1, and the client library speaking the wire for what a well-behaved CLI never sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rdesk.client.connection import Connection, connect
from rdesk.client.transfer import TransferError, Transfers
from rdesk.host.credentials import HostCredentials
from rdesk.host.security.passwords import PasswordStore
from rdesk.host.transfer.folder import PARTIAL_PREFIX
from rdesk.protocol.transfer import CHUNK, WINDOW, XferCredit, XferData, XferDone, XferGet, XferPut
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb

CLI = Callable[..., subprocess.CompletedProcess[str]]
VIEW_PASSWORD = "only looking"


async def _viewer(host: RunningHost, password: str = PASSWORD) -> Connection:
    return await connect(host.url, password, known_hosts=None, pinned=host.fingerprint,
                         name="tester")


def _transfer_events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("transfer ")]


def _fds_into(path: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            out.append(target)
    return out


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


async def test_put_ls_get_with_the_real_cli(xvfb: Xvfb, host_factory: Callable[..., RunningHost],
                                            rdesk_cli: CLI, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    inbox = tmp_path / "inbox"
    host = host_factory(xvfb.display, transfer_dir=inbox)
    local = tmp_path / "report.bin"
    data = os.urandom(3 * 1024 * 1024 + 123)
    local.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()

    put = await asyncio.to_thread(rdesk_cli, "put", host.url, str(local), "--json",
                                  *host.viewer_args())
    assert put.returncode == 0, put.stderr
    lines = [json.loads(line) for line in put.stdout.splitlines()]
    assert lines[-1] == {"event": "done", "direction": "upload", "file": str(local),
                         "name": "report.bin", "size": len(data), "sha256": sha}
    assert all(line["event"] == "progress" for line in lines[:-1]) and lines[:-1]
    assert put.stderr == ""  # piped: no progress bar
    assert (inbox / "report.bin").read_bytes() == data

    # The same name again is stored beside it, never over it.
    again = await asyncio.to_thread(rdesk_cli, "put", host.url, str(local), *host.viewer_args())
    assert again.returncode == 0, again.stderr
    assert "stored report (1).bin" in again.stdout
    assert sorted(os.listdir(inbox)) == ["report (1).bin", "report.bin"]

    ls = await asyncio.to_thread(rdesk_cli, "ls", host.url, "--json", *host.viewer_args())
    assert ls.returncode == 0, ls.stderr
    assert [json.loads(line) for line in ls.stdout.splitlines()] == [
        {"name": "report (1).bin", "size": len(data)}, {"name": "report.bin", "size": len(data)}]

    out = tmp_path / "back.bin"
    get = await asyncio.to_thread(rdesk_cli, "get", host.url, "report.bin", "-o", str(out),
                                  "--json", *host.viewer_args())
    assert get.returncode == 0, get.stderr
    assert json.loads(get.stdout.splitlines()[-1])["sha256"] == sha
    assert out.read_bytes() == data
    # get never overwrites a local file either.
    twice = await asyncio.to_thread(rdesk_cli, "get", host.url, "report.bin", "-o", str(out),
                                    *host.viewer_args())
    assert twice.returncode == 1 and "exists: not overwritten" in twice.stderr

    events = _transfer_events(caplog)
    assert any("direction=upload" in e and "file=report.bin" in e and f"sha256={sha}" in e
               and "result=ok" in e and "name=" in e and f"size={len(data)}" in e
               for e in events), events
    assert any("direction=download" in e and f"sha256={sha}" in e and "result=ok" in e
               for e in events), events


async def test_the_cli_refuses_a_path_and_the_host_refuses_it_on_the_wire(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], rdesk_cli: CLI,
        tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    host = host_factory(xvfb.display, transfer_dir=inbox)
    local = tmp_path / "x.txt"
    local.write_text("payload")
    cli = await asyncio.to_thread(rdesk_cli, "put", host.url, str(local), "--to",
                                  "../../.bashrc", *host.viewer_args())
    assert cli.returncode == 1 and "a name, not a path" in cli.stderr
    missing = await asyncio.to_thread(rdesk_cli, "get", host.url, "nothing.txt", "-o",
                                      str(tmp_path / "n"), *host.viewer_args())
    assert missing.returncode == 1 and "nothing.txt" in missing.stderr

    # A viewer that skips its own checks gets the host's refusal, with the reason.
    conn = await _viewer(host)
    try:
        transfers = Transfers(conn)
        for transfer_id, name in enumerate(["../../.bashrc", "/etc/passwd", "..\\x", "C:\\x",
                                            "NUL", "CON", "a\u200ftxt.exe", "é" * 128], 1):
            queue = transfers._queues[transfer_id] = asyncio.Queue()
            await conn.send_transfer(XferPut(transfer_id, name, 7))
            done = await asyncio.wait_for(queue.get(), 10)
            assert isinstance(done, XferDone) and not done.ok, name
            assert done.reason.startswith("refused name: "), done.reason
    finally:
        await conn.close()
    assert not inbox.exists() or os.listdir(inbox) == []
    assert not (tmp_path.parent / ".bashrc").exists()  # where ../../.bashrc would have gone


async def test_a_viewer_killed_mid_upload_leaves_no_partial_file_and_no_descriptor(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    inbox = tmp_path / "inbox"
    host = host_factory(xvfb.display, transfer_dir=inbox)
    big = tmp_path / "big.bin"
    with open(big, "wb") as file:
        file.truncate(2 << 30)  # sparse: 2 GiB to send, far more than the test lets through
    before = _fds_into(inbox)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "vc"), "put", host.url,
         str(big), *host.viewer_args()],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        def partial_growing() -> bool:
            names = os.listdir(inbox) if inbox.exists() else []
            return any(n.startswith(PARTIAL_PREFIX) and (inbox / n).stat().st_size > 1 << 20
                       for n in names)

        await asyncio.to_thread(_wait, partial_growing)
        assert _fds_into(inbox)  # the host holds the partial file open
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await asyncio.to_thread(_wait, lambda: os.listdir(inbox) == [] and
                                _fds_into(inbox) == before)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert any("direction=upload" in e and "result=aborted: viewer left" in e
               for e in _transfer_events(caplog))


async def test_a_viewer_killed_mid_download_leaves_nothing_in_its_folder(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path) -> None:
    """The download is written to an unnamed file: while it grows the folder shows nothing,
    and a SIGKILL leaves nothing (no hidden partial for the user to find and delete)."""
    inbox, downloads = tmp_path / "inbox", tmp_path / "downloads"
    inbox.mkdir()
    downloads.mkdir()
    with open(inbox / "big.bin", "wb") as file:
        file.truncate(2 << 30)  # sparse: far more than the test lets through
    host = host_factory(xvfb.display, transfer_dir=inbox)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "vc"), "get", host.url,
         "big.bin", "-o", str(downloads / "big.bin"), *host.viewer_args()],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )

    def growing() -> bool:
        """The viewer holds a file in the folder with more than 1 MiB written."""
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith(str(downloads)):
                    return os.stat(f"/proc/{proc.pid}/fd/{fd}").st_size > 1 << 20
        return False

    try:
        await asyncio.to_thread(_wait, growing)
        assert os.listdir(downloads) == []  # nothing has a name while it is written
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert os.listdir(downloads) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_viewer_that_stops_granting_credit_gets_one_window(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "big.bin").write_bytes(os.urandom(WINDOW * CHUNK * 3))  # more than 20 + 16 chunks
    host = host_factory(xvfb.display, transfer_dir=inbox)
    conn = await _viewer(host)
    try:
        transfers = Transfers(conn)
        queue = transfers._queues[1] = asyncio.Queue()
        await conn.send_transfer(XferGet(1, "big.bin"))
        await asyncio.wait_for(queue.get(), 10)  # ready
        await conn.send_transfer(XferCredit(1, WINDOW))
        chunks, unconfirmed = 0, []
        with pytest.raises(TimeoutError):
            while True:
                message = await asyncio.wait_for(queue.get(), 2)
                assert isinstance(message, XferData)
                chunks += 1
                if chunks <= 20:  # the first 20 are stored, then the viewer stops reading
                    await conn.send_transfer(XferCredit(1, 1))
                else:
                    unconfirmed.append(len(message.data))
        assert chunks > 20 and len(unconfirmed) <= WINDOW
        assert sum(unconfirmed) <= WINDOW * CHUNK
        await conn.ping()  # the connection is alive and well: only the transfer waits
    finally:
        await conn.close()


async def test_view_only_viewers_cannot_transfer_by_default(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    host = host_factory(
        xvfb.display, transfer_dir=inbox,
        credentials=HostCredentials(PasswordStore.from_password(PASSWORD),
                                    PasswordStore.from_password(VIEW_PASSWORD)),
    )
    local = tmp_path / "a.txt"
    local.write_text("hello")
    conn = await _viewer(host, VIEW_PASSWORD)
    try:
        assert conn.role == "view"
        transfers = Transfers(conn)
        with pytest.raises(TransferError, match="view-only viewers may not transfer files"):
            await transfers.put(local)
        with pytest.raises(TransferError, match="view-only"):
            await transfers.listing()
    finally:
        await conn.close()
    assert not inbox.exists()


async def test_transfer_off_and_upload_only(xvfb: Xvfb, host_factory: Callable[..., RunningHost],
                                            tmp_path: Path) -> None:
    local = tmp_path / "a.txt"
    local.write_text("hello")
    off = host_factory(xvfb.display, transfer="off", transfer_dir=tmp_path / "off")
    conn = await _viewer(off)
    try:
        with pytest.raises(TransferError, match="file transfer is off"):
            await Transfers(conn).put(local)
    finally:
        await conn.close()
    up = host_factory(xvfb.display, transfer="upload", transfer_dir=tmp_path / "up")
    conn = await _viewer(up)
    try:
        transfers = Transfers(conn)
        done = await transfers.put(local)
        assert done.ok and done.sha256 == hashlib.sha256(b"hello").hexdigest()
        with pytest.raises(TransferError, match="uploads only"):
            await transfers.get("a.txt", tmp_path / "back.txt")
        assert not (tmp_path / "back.txt").exists()
        assert [p.name for p in tmp_path.iterdir() if "rdesk-part" in p.name] == []
    finally:
        await conn.close()


async def test_a_progress_bar_on_a_terminal_and_none_when_piped(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path) -> None:
    import pty

    host = host_factory(xvfb.display, transfer_dir=tmp_path / "inbox")
    local = tmp_path / "bar.bin"
    local.write_bytes(os.urandom(8 << 20))
    controller, terminal = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "vc"), "put", host.url,
        str(local), *host.viewer_args(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
    )
    os.close(terminal)
    out, _ = await proc.communicate()
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    assert proc.returncode == 0, drawn
    text = drawn.decode()
    assert "\r" in text and "bar.bin [" in text and "MB/s" in text and "100%" in text
    assert "#" * 24 in text  # the full bar at the end
    assert out.decode().startswith("rdesk: stored bar.bin (8388608 bytes, SHA-256 ")


async def test_the_audit_log_file_records_each_transfer(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path) -> None:
    from rdesk.host.security.audit import AuditLog

    inbox = tmp_path / "inbox"
    host = host_factory(xvfb.display, transfer_dir=inbox)
    audit = AuditLog(tmp_path / "audit.jsonl")
    host.server._on_event = audit  # the hook rdesk host wires for --audit-log
    local = tmp_path / "a.txt"
    local.write_bytes(b"audited")
    conn = await _viewer(host)
    try:
        transfers = Transfers(conn)
        await transfers.put(local, "a.txt")
        queue = transfers._queues[99] = asyncio.Queue()  # what the CLI would never send
        await conn.send_transfer(XferPut(99, "../a.txt", 7))
        assert not (await asyncio.wait_for(queue.get(), 10)).ok  # type: ignore[attr-defined]
    finally:
        await conn.close()
        audit.close()
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    transfers_logged = [line for line in lines if line["kind"] == "transfer"]
    sha = hashlib.sha256(b"audited").hexdigest()
    assert [line["reason"] for line in transfers_logged] == [
        f"upload ok: a.txt (7 bytes, sha256 {sha})",
        "upload refused: refused name: the name holds '/': a name, not a path: ../a.txt "
        "(7 bytes)",
    ]
    assert all(line["name"] == "tester" for line in transfers_logged)
