"""Cursor and clipboard traffic on a host while another benchmark measures it (issue 15:
"cursor and clipboard messages never delay screen updates or input").

:class:`SessionTraffic` keeps the product's cursor and clipboard hubs on a test host (as
``rdesk/host/app.py`` does) and, for each block of a measurement, runs these streams:

- **cursor**: an X client on the host's display cycles the root window through the X cursor
  font's glyphs every ``cursor_every`` seconds with the pointer parked on the root window, so
  each change is an XFIXES cursor notify (the host forwards it when attached);
- **host clipboard**: ``xclip`` takes the CLIPBOARD selection with fresh text every
  ``clip_every`` seconds (when attached, the host reads it and sends it to the viewer,
  ``--clipboard both``);
- **viewer clipboard** (attached blocks only): the viewer puts fresh text into the host's
  CLIPBOARD as often.

A block is ``attached`` (the hubs' X sides run: the host watches, reads and forwards) or not
(the same X-side streams run, but the hubs' X sides are stopped: the host does no cursor or
clipboard work and the viewer gets none), so attached minus unattached is the delay the
product adds, apart from the traffic's own CPU (xclip, the X server's cursor work).
:attr:`counts` says, per kind of block, how much of each the viewer actually received or had
taken, so a run shows the traffic flowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from typing import Any

from rdesk.client.clipboard import ClipboardRefused, set_text
from rdesk.client.running import Connection
from rdesk.host.clipboard import bind_selections, start_clipboard
from rdesk.host.screen.cursor import CursorHub

__all__ = ["SessionTraffic"]

#: Text sent each time (a paragraph, changed by a counter so every offer is new).
_TEXT = "The quick brown fox jumps over the lazy dog. " * 40


class SessionTraffic:
    """Cursor and clipboard streams on ``host`` (a tests.e2e.conftest.RunningHost started with
    ``clipboard="both"``): :meth:`attach` before the viewer connects, then ``async with
    traffic.flowing(conn, attached=...)`` around each block, and :meth:`close` at the end."""

    def __init__(self, host: Any, *, park: tuple[int, int], cursor_every: float = 0.05,
                 clip_every: float = 0.2) -> None:
        self.host = host
        self.conn: Connection | None = None
        self.park = park
        self.cursor_every = cursor_every
        self.clip_every = clip_every
        #: Per kind of block ("attached", "unattached"): what the viewer received or had taken.
        self.counts: dict[str, dict[str, int]] = {}
        self._mode = "attached"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._task: asyncio.Task[None] | None = None
        self._clipboard: Any = None
        self._cursor: CursorHub | None = None
        self._x_sides = False
        self._listening: Connection | None = None

    def attach(self) -> None:
        """Attach the hubs to the host before the viewer connects (each viewer finds them)."""
        display = self.host.display

        async def attach() -> None:
            self._clipboard = start_clipboard(self.host.server.settings, display,
                                              lambda *_a, **_k: None)
            self._cursor = CursorHub().start(display)
            self.host.server.clipboard, self.host.server.cursor = self._clipboard, self._cursor

        self.host.call(attach())
        self._x_sides = True

    def _set_x_sides(self, on: bool) -> None:
        """Start or stop the hubs' X sides (their watcher threads and X connections)."""
        if on == self._x_sides:
            return
        display = self.host.display

        async def switch() -> None:
            assert self._cursor is not None
            if on:
                bind_selections(self._clipboard, display)
                self._cursor.start(display)
            else:
                self._clipboard.close()
                self._cursor.close()

        self.host.call(switch())
        self._x_sides = on

    def close(self) -> None:
        """Stop the hubs' X sides for good."""
        self._set_x_sides(False)

    def flowing(self, conn: Connection, *, attached: bool = True) -> SessionTraffic:
        """The streams, with the hubs ``attached`` or not, while the ``async with`` lasts."""
        self.conn = conn
        self._mode = "attached" if attached else "unattached"
        return self

    def _block_counts(self) -> dict[str, int]:
        return self.counts.setdefault(self._mode, {
            "cursor shapes seen": 0, "host texts received": 0, "viewer texts taken": 0})

    def _count(self, what: str) -> None:
        self._block_counts()[what] += 1

    async def __aenter__(self) -> SessionTraffic:
        assert self.conn is not None, "use: async with traffic.flowing(conn)"
        attached = self._mode == "attached"
        self._block_counts()  # reported even when nothing arrives
        if self._listening is not self.conn:
            self._listening = self.conn
            self.conn.clipboard.on_text.append(lambda _s, _t: self._count("host texts received"))
        self._set_x_sides(attached)
        self._stop.clear()
        self._threads = [threading.Thread(target=target, daemon=True)
                         for target in (self._cursors, self._host_clipboard)]
        for thread in self._threads:
            thread.start()
        if attached:
            self._task = asyncio.create_task(self._viewer_clipboard())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for thread in self._threads:
            thread.join(10)
    def _cursors(self) -> None:
        from Xlib import X, display  # the host extra's python-xlib

        d = display.Display(self.host.display)
        try:
            root = d.screen().root
            root.warp_pointer(*self.park)
            font = d.open_font("cursor")
            glyphs = [font.create_glyph_cursor(font, g, g + 1, (0, 0, 0),
                                               (65535, 65535, 65535)) for g in range(0, 154, 2)]
            i = 0
            last = self.conn.cursor if self.conn is not None else None  # a block's own only
            while not self._stop.wait(self.cursor_every):
                root.change_attributes(cursor=glyphs[i % len(glyphs)])
                d.flush()
                i += 1
                shape = self.conn.cursor if self.conn is not None else None
                if shape is not None and shape is not last:
                    last = shape
                    self._count("cursor shapes seen")
            root.change_attributes(cursor=X.NONE)
            d.flush()
        finally:
            d.close()

    def _host_clipboard(self) -> None:
        env = {**os.environ, "DISPLAY": self.host.display}
        owners: list[subprocess.Popen[bytes]] = []
        i = 0
        try:
            while not self._stop.wait(self.clip_every):
                i += 1
                # In the foreground (-quiet), serving one request (the host's, -loops 1); it
                # also ends when the next one takes the selection.
                owner = subprocess.Popen(
                    ["xclip", "-quiet", "-selection", "clipboard", "-loops", "1", "-i"],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, env=env)
                assert owner.stdin is not None
                owner.stdin.write(f"host {i} {_TEXT}".encode())
                owner.stdin.close()
                owners = [p for p in owners if p.poll() is None] + [owner]
        finally:
            for owner in owners:
                owner.kill()
                owner.wait()

    async def _viewer_clipboard(self) -> None:
        assert self.conn is not None
        i = 0
        # The stop flag too, not only the cancel: CPython 3.11's wait_for (in set_text) loses
        # a cancel that comes as its wait ends (gh-86296), and this loop then ran forever.
        while not self._stop.is_set():
            await asyncio.sleep(self.clip_every)
            i += 1
            with contextlib.suppress(ClipboardRefused, TimeoutError):
                await set_text(self.conn, f"viewer {i} {_TEXT}", timeout=5)
                self._count("viewer texts taken")
