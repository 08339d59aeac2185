"""The desktop viewer's transfer window: a real Tk on Xvfb, a real connection on its own loop
thread (as the window's worker runs it) to a real host; send, receive and cancel."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import tkinter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rdesk.client.connection import Connection, connect
from rdesk.client.tk.transfer import TransferWindow
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb


class LoopWorker:
    """The worker's part the transfer window uses: a loop thread and its connection."""

    def __init__(self, host: RunningHost) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.conn: Connection | None = asyncio.run_coroutine_threadsafe(
            connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint),
            self.loop).result(30)

    def stop(self) -> None:
        if self.conn is not None:
            asyncio.run_coroutine_threadsafe(self.conn.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def window(xvfb_factory: Callable[..., Xvfb], host_factory: Callable[..., RunningHost],
           tmp_path: Path) -> Iterator[tuple[TransferWindow, tkinter.Tk, Path]]:
    host_screen, viewer_screen = xvfb_factory(), xvfb_factory()
    inbox = tmp_path / "inbox"
    host = host_factory(host_screen.display, transfer_dir=inbox)
    root = tkinter.Tk(screenName=viewer_screen.display)
    worker = LoopWorker(host)
    try:
        yield TransferWindow(root, worker), root, inbox
    finally:
        worker.stop()
        root.destroy()


def _pump(root: tkinter.Tk, done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the transfer window did not finish in time"
        root.update()
        time.sleep(0.02)


def test_send_receive_and_cancel_from_the_window(
        window: tuple[TransferWindow, tkinter.Tk, Path], tmp_path: Path) -> None:
    ui, root, inbox = window
    data = os.urandom(1_500_000)
    local = tmp_path / "notes.bin"
    local.write_bytes(data)
    (row_id,) = ui.send_paths([local])
    row = ui.rows[row_id]
    _pump(root, lambda: row.state != "running")
    assert row.state == "done", row.status.get()
    assert row.status.get().startswith("stored as notes.bin · SHA-256 ")
    assert float(row.bar.cget("value")) == len(data)
    assert (inbox / "notes.bin").read_bytes() == data

    dest = tmp_path / "back.bin"
    got = ui.rows[ui.receive("notes.bin", dest)]
    _pump(root, lambda: got.state != "running")
    assert got.state == "done" and dest.read_bytes() == data

    # Cancel mid-way: the row says so and the host keeps no partial file.
    big = tmp_path / "big.bin"
    with open(big, "wb") as file:
        file.truncate(1 << 30)
    (big_id,) = ui.send_paths([big])
    big_row = ui.rows[big_id]
    _pump(root, lambda: "MB/s" in big_row.status.get())
    big_row.cancel.invoke()
    _pump(root, lambda: big_row.state != "running")
    assert big_row.state == "cancelled"
    _pump(root, lambda: sorted(os.listdir(inbox)) == ["notes.bin"], timeout=15)

    missing = ui.rows[ui.receive("nothing.txt", tmp_path / "n.txt")]
    _pump(root, lambda: missing.state != "running")
    assert missing.state == "failed" and "nothing.txt" in missing.status.get()
