"""The host's transfer room against a real folder: each safety rule of issue 17 as a test.

The file system is real (a temporary folder, real symlinks, a real tmpfs for the full disk);
only the viewer's side is played by the test, feeding the room its messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from rdesk.host.settings import HostSettings
from rdesk.host.transfer.folder import PARTIAL_PREFIX, FolderError, TransferFolder
from rdesk.host.transfer.policy import TransferPolicy, policy_from
from rdesk.host.transfer.room import TransferRoom
from rdesk.protocol.access import Access
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.transfer import (
    CHUNK,
    WINDOW,
    Sending,
    XferCancel,
    XferCredit,
    XferData,
    XferDone,
    XferEnd,
    XferEntry,
    XferGet,
    XferList,
    XferPut,
    XferReady,
)

T = TypeVar("T")


class Viewer:
    """The test's side: collects what the room sends, and the audit events."""

    def __init__(self, folder: Path, access: Access = Access.CONTROL, **policy: object) -> None:
        self.sent: list[object] = []
        self.events: list[tuple[str, dict[str, object]]] = []
        self.room = TransferRoom(
            TransferPolicy(folder=folder, disk_reserve=0, **policy),  # type: ignore[arg-type]
            5, "alice", access, self._send, lambda kind, **f: self.events.append((kind, f)),
        )

    async def _send(self, message: object) -> None:
        self.sent.append(message)

    def of(self, cls: type[T]) -> list[T]:
        return [m for m in self.sent if isinstance(m, cls)]

    def done(self) -> XferDone:
        (done,) = self.of(XferDone)
        return done

    def audit(self) -> dict[str, object]:
        (fields,) = [f for kind, f in self.events if kind == "transfer"]
        return fields

    async def upload(self, transfer_id: int, name: str, data: bytes, *, end: bool = True
                     ) -> Sending:
        """Send ``data`` as the viewer would, spending only the credit the room gives."""
        await self.room.handle(XferPut(transfer_id, name, len(data)))
        flow = Sending(transfer_id, len(data))
        if not self.of(XferReady):
            return flow
        while flow.remaining:
            for credit in self.of(XferCredit):
                flow.on_credit(credit)
            self.sent = [m for m in self.sent if not isinstance(m, XferCredit)]
            if flow.credit == 0:
                return flow  # the room stopped granting: it ended the transfer
            chunk = data[flow.sent:flow.sent + CHUNK]
            await self.room.handle(flow.chunk(chunk))
        if end:
            await self.room.handle(flow.end())
        return flow


def _fds_into(path: Path) -> list[str]:
    """This process's open descriptors that point into ``path``."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            out.append(target)
    return out


# --- names are names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../.bashrc", "/etc/passwd", "..\\x", "C:\\x", "NUL",
                                  "CON", "a\u202egpj.exe", "x" * 256, "..", ".rdesk-partial-x"])
async def test_a_path_from_the_viewer_is_refused_with_the_reason(tmp_path: Path,
                                                                 name: str) -> None:
    folder = tmp_path / "inbox"
    viewer = Viewer(folder)
    await viewer.upload(1, name, b"owned")
    done = viewer.done()
    assert not done.ok and done.reason.startswith("refused name: ")
    assert os.listdir(folder) == []
    assert sorted(os.listdir(tmp_path)) == ["inbox"]  # nothing written beside the folder
    assert viewer.audit()["result"] == f"refused: {done.reason}"
    await viewer.room.close()


async def test_get_refuses_paths_too(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("top secret")
    viewer = Viewer(tmp_path / "inbox")
    await viewer.room.handle(XferGet(1, "../secret"))
    assert not viewer.done().ok and "a name, not a path" in viewer.done().reason
    assert viewer.of(XferData) == []
    await viewer.room.close()


# --- symlinks are never followed ----------------------------------------------------------------


async def test_a_symlink_inside_the_folder_is_never_followed(tmp_path: Path) -> None:
    folder, outside = tmp_path / "inbox", tmp_path / "outside.txt"
    folder.mkdir()
    outside.write_text("outside")
    (folder / "report.txt").symlink_to(outside)
    viewer = Viewer(folder)
    # Download through it: refused, the outside file is not read.
    await viewer.room.handle(XferGet(1, "report.txt"))
    assert "symbolic link: not followed" in viewer.done().reason
    assert viewer.of(XferData) == []
    # Listing: the link is not shown.
    viewer.sent.clear()
    await viewer.room.handle(XferList(2))
    assert viewer.of(XferEntry) == [] and viewer.done().ok
    # Upload onto it: stored under another name, the link and its target untouched.
    viewer.sent.clear()
    await viewer.upload(3, "report.txt", b"new")
    assert viewer.done().ok and viewer.done().name == "report (1).txt"
    assert outside.read_text() == "outside" and (folder / "report.txt").is_symlink()
    assert (folder / "report (1).txt").read_bytes() == b"new"
    await viewer.room.close()


async def test_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "inbox").symlink_to(tmp_path / "real")
    with pytest.raises(FolderError, match="cannot open the transfer folder"):
        TransferFolder(tmp_path / "inbox")
    viewer = Viewer(tmp_path / "inbox")
    await viewer.upload(1, "a.txt", b"x")
    assert not viewer.done().ok and "cannot open the transfer folder" in viewer.done().reason
    await viewer.room.close()


async def test_a_fifo_or_a_folder_is_not_sent(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    (folder / "sub").mkdir()
    viewer = Viewer(folder)
    await viewer.room.handle(XferGet(1, "pipe"))  # O_NONBLOCK: no hang on a FIFO
    await viewer.room.handle(XferGet(2, "sub"))
    reasons = sorted(d.reason for d in viewer.of(XferDone))
    assert reasons == ["'pipe' is not a regular file", "'sub' is not a regular file"]
    await viewer.room.close()


# --- nothing is overwritten, nothing partial is visible -------------------------------------------


async def test_nothing_is_overwritten_silently(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "notes.txt").write_bytes(b"old")
    viewer = Viewer(folder)
    await viewer.upload(1, "notes.txt", b"new")
    assert viewer.done().ok and viewer.done().name == "notes (1).txt"
    assert (folder / "notes.txt").read_bytes() == b"old"
    refusing = Viewer(folder, overwrite="refuse")
    await refusing.upload(2, "notes.txt", b"newer")
    assert not refusing.done().ok and "never overwrites" in refusing.done().reason
    assert (folder / "notes.txt").read_bytes() == b"old"
    await viewer.room.close()
    await refusing.room.close()


async def test_a_partial_file_is_never_visible_under_its_final_name(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    viewer = Viewer(folder)
    data = os.urandom(5 * CHUNK)
    await viewer.upload(1, "big.bin", data, end=False)
    names = os.listdir(folder)
    assert len(names) == 1 and names[0].startswith(PARTIAL_PREFIX)
    assert (folder / names[0]).stat().st_mode & 0o777 == 0o600
    # The listing never offers it either.
    listing = Viewer(folder)
    await listing.room.handle(XferList(9))
    assert listing.of(XferEntry) == []
    await viewer.room.handle(XferEnd(1, hashlib.sha256(data).hexdigest()))
    assert viewer.done().ok and os.listdir(folder) == ["big.bin"]
    assert (folder / "big.bin").read_bytes() == data
    assert viewer.audit() == {
        "viewer": 5, "name": "alice", "role": "control", "direction": "upload",
        "file": "big.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "result": "ok",
        "reason": f"upload ok: big.bin ({len(data)} bytes, sha256 "
                  f"{hashlib.sha256(data).hexdigest()})",
    }
    await viewer.room.close()
    await listing.room.close()


async def test_a_wrong_hash_stores_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    viewer = Viewer(folder)
    await viewer.upload(1, "a.txt", b"abc", end=False)
    await viewer.room.handle(XferEnd(1, hashlib.sha256(b"abd").hexdigest()))
    assert not viewer.done().ok and "differs" in viewer.done().reason
    assert os.listdir(folder) == []
    await viewer.room.close()


async def test_a_viewer_gone_mid_transfer_leaves_no_file_and_no_descriptor(
        tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "out.bin").write_bytes(os.urandom(WINDOW * CHUNK * 3))
    before = _fds_into(tmp_path)
    viewer = Viewer(folder)
    await viewer.upload(1, "in.bin", os.urandom(4 * CHUNK), end=False)
    await viewer.room.handle(XferGet(2, "out.bin"))
    await asyncio.sleep(0.05)  # the download sends its window and waits for credit
    assert _fds_into(tmp_path) != before
    await viewer.room.close()
    assert _fds_into(tmp_path) == before
    assert os.listdir(folder) == ["out.bin"]
    results = sorted(str(f["result"]) for kind, f in viewer.events if kind == "transfer")
    assert results == ["aborted: viewer left", "aborted: viewer left"]


async def test_a_cancelled_upload_is_removed(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    viewer = Viewer(folder)
    await viewer.upload(1, "a.bin", os.urandom(3 * CHUNK), end=False)
    await viewer.room.handle(XferCancel(1, "user pressed cancel"))
    assert os.listdir(folder) == []
    assert viewer.audit()["result"] == "cancelled by the viewer: user pressed cancel"
    # Chunks already in flight for it are dropped quietly; an id never used is an error.
    await viewer.room.handle(XferData(1, 3 * CHUNK, b"late"))
    with pytest.raises(RemoteProtocolError, match="unknown transfer 77"):
        await viewer.room.handle(XferData(77, 0, b"x"))
    await viewer.room.close()


# --- caps and a full disk ------------------------------------------------------------------------


async def test_size_caps_refuse_before_any_byte(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    viewer = Viewer(folder, max_file=1000, max_session=1500)
    await viewer.upload(1, "big.bin", b"x" * 1001)
    assert "larger than this host's cap of 1000 bytes" in viewer.done().reason
    viewer.sent.clear()
    await viewer.upload(2, "a.bin", b"x" * 1000)
    assert viewer.done().ok
    viewer.sent.clear()
    await viewer.upload(3, "b.bin", b"x" * 600)
    assert "session's transfer cap of 1500 bytes is used up" in viewer.done().reason
    assert os.listdir(folder) == ["a.bin"]
    await viewer.room.close()


async def test_a_viewer_sending_past_its_announced_size_is_stopped(tmp_path: Path) -> None:
    viewer = Viewer(tmp_path / "inbox", max_file=10)
    await viewer.room.handle(XferPut(1, "a.bin", 10))
    with pytest.raises(RemoteProtocolError, match="more than its 10 bytes"):
        await viewer.room.handle(XferData(1, 0, b"x" * 11))
    await viewer.room.close()
    assert os.listdir(tmp_path / "inbox") == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (root only): a disk that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    ).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


async def test_a_full_disk_ends_the_transfer_and_removes_the_partial_file(
        small_disk: Path) -> None:
    folder = small_disk / "inbox"
    viewer = Viewer(folder)
    data = os.urandom(700 * 1024)
    await viewer.room.handle(XferPut(1, "a.bin", len(data)))
    assert viewer.of(XferReady)  # it fitted when it was accepted...
    (small_disk / "filler").write_bytes(b"\0" * (600 * 1024))  # ...then the disk filled up
    flow = Sending(1, len(data))
    failed = False
    while flow.remaining and not failed:
        for credit in viewer.of(XferCredit):
            flow.on_credit(credit)
        viewer.sent = [m for m in viewer.sent if not isinstance(m, XferCredit)]
        assert flow.credit > 0
        await viewer.room.handle(flow.chunk(data[flow.sent:flow.sent + CHUNK]))
        failed = bool(viewer.of(XferDone))
    done = viewer.done()
    assert not done.ok and done.reason == "the host's disk is full: transfer stopped"
    assert os.listdir(folder) == []
    assert viewer.audit()["result"] == f"failed: {done.reason}"
    await viewer.room.close()


async def test_an_upload_larger_than_the_free_space_is_refused(small_disk: Path) -> None:
    viewer = Viewer(small_disk / "inbox")
    await viewer.upload(1, "a.bin", b"x" * (2 << 20))
    assert "not enough free space" in viewer.done().reason
    assert os.listdir(small_disk / "inbox") == []
    await viewer.room.close()


# --- who may, and flow control ---------------------------------------------------------------


async def test_view_only_viewers_may_not_transfer_by_default(tmp_path: Path) -> None:
    viewer = Viewer(tmp_path / "inbox", access=Access.VIEW)
    await viewer.upload(1, "a.txt", b"x")
    await viewer.room.handle(XferList(2))
    reasons = {d.reason for d in viewer.of(XferDone)}
    assert reasons == {"view-only viewers may not transfer files"}
    assert not (tmp_path / "inbox").exists()  # not even created
    await viewer.room.close()
    allowed = Viewer(tmp_path / "inbox", access=Access.VIEW, view_only=True)
    await allowed.upload(1, "a.txt", b"x")
    assert allowed.done().ok
    await allowed.room.close()


@pytest.mark.parametrize(("mode", "refused"), [("off", {"upload", "download"}),
                                              ("upload", {"download"}),
                                              ("download", {"upload"}), ("both", set())])
async def test_the_transfer_mode(tmp_path: Path, mode: str, refused: set[str]) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "have.txt").write_bytes(b"hi")
    viewer = Viewer(folder, mode=mode)
    await viewer.upload(1, "a.txt", b"x")
    await viewer.room.handle(XferGet(2, "have.txt"))
    await asyncio.sleep(0.01)
    got = {"upload" if d.id == 1 else "download" for d in viewer.of(XferDone) if not d.ok}
    assert got == refused
    await viewer.room.close()


async def test_a_viewer_that_stops_reading_gets_one_window_and_no_more(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    data = os.urandom(WINDOW * CHUNK * 4)
    (folder / "f.bin").write_bytes(data)
    viewer = Viewer(folder)
    await viewer.room.handle(XferGet(1, "f.bin"))
    await viewer.room.handle(XferCredit(1, WINDOW))
    returned = 0
    for _ in range(200):  # the viewer stores the first 20 chunks, then stops reading
        await asyncio.sleep(0.001)
        while returned < min(20, len(viewer.of(XferData))):
            returned += 1
            await viewer.room.handle(XferCredit(1, 1))
    sent = viewer.of(XferData)
    outstanding = sent[returned:]
    # Then the host waits: no more than one window unconfirmed, no buffering of the file.
    assert returned == 20 and 0 < len(outstanding) <= WINDOW
    assert sum(len(chunk.data) for chunk in outstanding) <= WINDOW * CHUNK
    for _ in range(50):
        await asyncio.sleep(0.001)
    assert len(viewer.of(XferData)) == len(sent)
    await viewer.room.handle(XferCredit(1, 3))  # credit again: it sends on
    for _ in range(50):
        await asyncio.sleep(0.001)
    assert len(viewer.of(XferData)) > len(sent)
    await viewer.room.close()


async def test_a_download_arrives_whole_with_its_hash(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    data = os.urandom(WINDOW * CHUNK * 2 + 5)
    (folder / "f.bin").write_bytes(data)
    viewer = Viewer(folder)
    await viewer.room.handle(XferGet(1, "f.bin"))
    assert viewer.of(XferReady) == [XferReady(1, "f.bin", len(data))]
    got = bytearray()
    await viewer.room.handle(XferCredit(1, WINDOW))
    while not viewer.of(XferEnd):
        await asyncio.sleep(0)
        for chunk in viewer.of(XferData):
            assert chunk.offset == len(got)
            got += chunk.data
            await viewer.room.handle(XferCredit(1, 1))
        viewer.sent = [m for m in viewer.sent if not isinstance(m, XferData)]
    assert bytes(got) == data
    assert viewer.of(XferEnd)[0].sha256 == hashlib.sha256(data).hexdigest()
    assert viewer.audit()["result"] == "ok" and viewer.audit()["direction"] == "download"
    await viewer.room.close()


def test_the_policy_follows_the_settings(tmp_path: Path) -> None:
    policy = policy_from(HostSettings(transfer="upload", transfer_dir=tmp_path,
                                      transfer_max_file=5, transfer_view_only=True))
    assert (policy.mode, policy.folder, policy.max_file, policy.view_only) == (
        "upload", tmp_path, 5, True)
    default = policy_from(None)
    assert default.mode == "both" and not default.view_only


def test_stale_partial_files_are_removed_on_opening(tmp_path: Path) -> None:
    (tmp_path / f"{PARTIAL_PREFIX}0123").write_bytes(b"half")
    (tmp_path / "kept.txt").write_bytes(b"whole")
    TransferFolder(tmp_path).close()
    assert os.listdir(tmp_path) == ["kept.txt"]


# --- --consent ask: a transfer waits for the host's user (the e2e test answers for real) ------


async def test_a_transfer_waiting_for_consent_can_be_cancelled_or_left(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    asked: list[tuple[str, str, int]] = []
    never = asyncio.Event()

    async def ask(direction: str, file: str, size: int) -> str | None:
        asked.append((direction, file, size))
        await never.wait()  # the host's user is away
        return None

    viewer = Viewer(folder)
    viewer.room = TransferRoom(TransferPolicy(folder=folder, disk_reserve=0), 5, "alice",
                               Access.CONTROL, viewer._send,
                               lambda kind, **f: viewer.events.append((kind, f)), ask=ask)
    await viewer.room.handle(XferPut(1, "a.bin", 3))
    await viewer.room.handle(XferPut(2, "b.bin", 3))
    for _ in range(5):
        await asyncio.sleep(0)
    assert asked == [("upload", "a.bin", 3)]  # one question at a time; nothing sent yet
    assert viewer.sent == [] and not folder.exists()
    with pytest.raises(RemoteProtocolError, match="already in use"):
        await viewer.room.handle(XferGet(1, "a.bin"))
    await viewer.room.handle(XferCancel(1, "changed my mind"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert asked == [("upload", "a.bin", 3), ("upload", "b.bin", 3)]  # the next question
    assert viewer.audit()["result"] == "cancelled by the viewer: changed my mind"
    await viewer.room.close()  # the viewer leaves while b.bin's question waits
    assert viewer.sent == [] and not folder.exists()
