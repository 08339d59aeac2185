"""The desktop viewer's file transfer: the F8 menu's "Send files…" and "Receive files…", and
the progress window (one row per file: bar, MB/s, time left, Cancel).

The transfers themselves run on the worker's event loop (rdesk/client/transfer.py over the
worker's current connection); their progress comes back to the Tk thread through a queue the
window drains every 50 ms, since Tk may only be touched from its own thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import time
import tkinter
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any, Protocol

from rdesk.client.running import Connection
from rdesk.client.transfer import Meter, TransferError, Transfers

__all__ = ["TransferWindow"]

_POLL_MS = 50


class _Worker(Protocol):
    """What the window needs of the worker (rdesk/client/tk/worker.py)."""

    loop: asyncio.AbstractEventLoop
    conn: Connection | None


class _Row:
    """One transfer's line in the window."""

    def __init__(self, parent: tkinter.Misc, label: str, on_cancel: Callable[[], None]) -> None:
        self.frame = ttk.Frame(parent, padding=4)
        ttk.Label(self.frame, text=label, width=40).grid(row=0, column=0, columnspan=2, sticky="w")
        self.bar = ttk.Progressbar(self.frame, length=260, maximum=1)
        self.bar.grid(row=1, column=0, sticky="we")
        self.cancel = ttk.Button(self.frame, text="Cancel", command=on_cancel)
        self.cancel.grid(row=1, column=1, padx=4)
        self.status = tkinter.StringVar(value="waiting for the host…")
        ttk.Label(self.frame, textvariable=self.status).grid(row=2, column=0, columnspan=2,
                                                             sticky="w")
        self.frame.pack(fill="x")
        #: "running", "done", "failed" or "cancelled" (what tests and the title read).
        self.state = "running"
        self.meter: Meter | None = None


class TransferWindow:
    """The transfer window of one viewer window; :meth:`of` gives the one for a view."""

    _windows: weakref.WeakKeyDictionary[Any, TransferWindow] = weakref.WeakKeyDictionary()

    def __init__(self, root: tkinter.Misc, worker: _Worker) -> None:
        self.root, self.worker = root, worker
        self.top: tkinter.Toplevel | None = None
        self.rows: dict[int, _Row] = {}
        self._events: queue.Queue[tuple[int, str, object]] = queue.Queue()
        self._transfers: tuple[Connection, Transfers] | None = None
        self._next = 0
        self.root.after(_POLL_MS, self._drain)

    @classmethod
    def of(cls, view: Any) -> TransferWindow:
        """The window of a :class:`~rdesk.client.tk.window.ViewerWindow`, made on first use."""
        window = cls._windows.get(view)
        if window is None:
            window = cls._windows[view] = cls(view.root, view.worker)
        return window

    # --- what the menu calls (Tk thread) -------------------------------------------------------

    def choose_and_send(self) -> None:
        """Ask which files to send, then send each."""
        paths = filedialog.askopenfilenames(parent=self.root, title="Send files to the host")
        self.send_paths([Path(p) for p in paths])

    def choose_and_receive(self) -> None:
        """Fetch the host's listing, let the user pick a file and where to save it."""
        self._submit(-1, self._listing())

    def send_paths(self, paths: list[Path]) -> list[int]:
        """Send ``paths`` into the host's transfer folder; the row ids."""
        ids = []
        for path in paths:
            row_id = self._row(f"↑ {path.name}")
            self._submit(row_id, self._put(row_id, path))
            ids.append(row_id)
        return ids

    def receive(self, name: str, dest: Path) -> int:
        """Fetch ``name`` from the host's transfer folder into ``dest``; the row id."""
        row_id = self._row(f"↓ {name}")
        self._submit(row_id, self._get(row_id, name, dest))
        return row_id

    # --- the worker's loop -------------------------------------------------------------------

    def _current(self) -> Transfers:
        conn = self.worker.conn
        if conn is None or conn.closed.done():
            raise TransferError("not connected")
        if self._transfers is None or self._transfers[0] is not conn:
            self._transfers = (conn, Transfers(conn))
        return self._transfers[1]

    def _progress(self, row_id: int) -> Callable[[int, int], None]:
        return lambda done, total: self._events.put((row_id, "progress", (done, total)))

    async def _put(self, row_id: int, path: Path) -> str:
        done = await self._current().put(path, path.name, self._progress(row_id))
        return f"stored as {done.name} · SHA-256 {done.sha256[:16]}…"

    async def _get(self, row_id: int, name: str, dest: Path) -> str:
        _, sha = await self._current().get(name, dest, self._progress(row_id))
        return f"saved to {dest} · SHA-256 {sha[:16]}…"

    async def _listing(self) -> list[tuple[str, int]]:
        return await self._current().listing()

    def _submit(self, row_id: int, work: Coroutine[Any, Any, object]) -> None:
        future = asyncio.run_coroutine_threadsafe(work, self.worker.loop)
        row = self.rows.get(row_id)
        if row is not None:
            row.cancel.configure(command=future.cancel)
        future.add_done_callback(lambda f: self._events.put((row_id, "finished", f)))

    # --- back on the Tk thread ---------------------------------------------------------------

    def _row(self, label: str) -> int:
        if self.top is None or not self.top.winfo_exists():
            self.top = tkinter.Toplevel(self.root)
            self.top.title("rdesk – file transfer")
        self._next += 1
        self.rows[self._next] = _Row(self.top, label, lambda: None)
        return self._next

    def _drain(self) -> None:
        try:
            while True:
                row_id, kind, value = self._events.get_nowait()
                if row_id == -1 and kind == "finished":
                    assert isinstance(value, concurrent.futures.Future)
                    self._pick_from(value)
                elif kind == "progress":
                    assert isinstance(value, tuple)
                    self._show_progress(self.rows[row_id], *value)
                else:
                    assert isinstance(value, concurrent.futures.Future)
                    self._finished(self.rows[row_id], value)
        except queue.Empty:
            pass
        self.root.after(_POLL_MS, self._drain)

    def _show_progress(self, row: _Row, done: int, total: int) -> None:
        now = time.monotonic()
        if row.meter is None:
            row.meter = Meter(total, now)
            row.bar.configure(maximum=max(total, 1))
        row.meter.update(done, now)
        row.bar.configure(value=done)
        left = "" if row.meter.left is None else f" · {int(row.meter.left + 0.5)} s left"
        percent = 100 * done // total if total else 100
        row.status.set(f"{percent}% · {row.meter.rate / 1e6:.1f} MB/s{left}")

    def _finished(self, row: _Row, future: concurrent.futures.Future[Any]) -> None:
        row.cancel.configure(state="disabled")
        if future.cancelled():
            row.state = "cancelled"
            row.status.set("cancelled")
            return
        error = future.exception()
        if error is None:
            row.state = "done"
            row.bar.configure(value=row.bar.cget("maximum"))
            row.status.set(str(future.result()))
        else:
            row.state = "failed"
            row.status.set(str(error) if isinstance(error, (TransferError, OSError)) else
                           "failed: " + type(error).__name__)

    def _pick_from(self, future: concurrent.futures.Future[Any]) -> None:
        """The listing arrived: a small chooser, then where to save."""
        if future.cancelled() or future.exception() is not None:
            error = None if future.cancelled() else future.exception()
            from tkinter import messagebox

            messagebox.showerror("rdesk", f"Cannot list the host's files: {error}",
                                 parent=self.root)
            return
        entries: list[tuple[str, int]] = future.result()
        chooser = tkinter.Toplevel(self.root)
        chooser.title("Receive a file from the host")
        box = tkinter.Listbox(chooser, width=60, height=min(20, max(3, len(entries))))
        for name, size in entries:
            box.insert("end", f"{name}  ({size} bytes)")
        box.pack(fill="both", expand=True)

        def fetch() -> None:
            chosen = box.curselection()
            if not chosen:
                return
            name = entries[chosen[0]][0]
            chooser.destroy()
            dest = filedialog.asksaveasfilename(parent=self.root, initialfile=name,
                                                title="Save the host's file as")
            if dest:
                self.receive(name, Path(dest))

        ttk.Button(chooser, text="Receive", command=fetch).pack(side="right", padx=4, pady=4)
        ttk.Button(chooser, text="Close", command=chooser.destroy).pack(side="right", pady=4)
