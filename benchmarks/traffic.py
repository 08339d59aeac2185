"""Cursor and clipboard traffic on a host while another benchmark measures it (issue 15:
"cursor and clipboard messages never delay screen updates or input").

:class:`SessionTraffic` attaches the product's cursor and clipboard hubs to a test host (as
``rdesk/host/app.py`` does), then keeps three streams going until stopped:

- **cursor**: an X client on the host's display cycles the root window through the X cursor
  font's glyphs every ``cursor_every`` seconds with the pointer parked on the root window, so
  each change is an XFIXES cursor notify the host forwards (new shapes, then cached ones);
- **host clipboard**: ``xclip`` takes the CLIPBOARD selection with fresh text every
  ``clip_every`` seconds; the host reads it and sends it to the viewer (``--clipboard both``);
- **viewer clipboard**: the viewer puts fresh text into the host's CLIPBOARD as often.

:attr:`counts` says how much of each the viewer actually received or had taken, so a run can
show the traffic flowed.
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
from rdesk.host.clipboard import start_clipboard
from rdesk.host.screen.cursor import CursorHub

__all__ = ["SessionTraffic"]

#: Text sent each time (a paragraph, changed by a counter so every offer is new).
_TEXT = "The quick brown fox jumps over the lazy dog. " * 40


class SessionTraffic:
    """Cursor and clipboard streams on ``host`` (a tests.e2e.conftest.RunningHost started with
    ``clipboard="both"``): :meth:`attach` before the viewer connects, then ``async with
    traffic.flowing(conn)`` around the measurement."""

    def __init__(self, host: Any, *, park: tuple[int, int], cursor_every: float = 0.05,
                 clip_every: float = 0.2) -> None:
        self.host = host
        self.conn: Connection | None = None
        self.park = park
        self.cursor_every = cursor_every
        self.clip_every = clip_every
        self.counts = {"cursor shapes seen": 0, "host texts received": 0,
                       "viewer texts taken": 0}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._task: asyncio.Task[None] | None = None
        self._hubs: list[Any] = []

    def attach(self) -> None:
        """Attach the hubs to the host before the viewer connects (each viewer finds them)."""
        display = self.host.display

        async def attach() -> None:
            self._hubs.append(start_clipboard(self.host.server.settings, display,
                                              lambda *_a, **_k: None))
            self._hubs.append(CursorHub().start(display))
            self.host.server.clipboard, self.host.server.cursor = self._hubs

        self.host.call(attach())

    def flowing(self, conn: Connection) -> SessionTraffic:
        """The streams, to and from viewer ``conn``, while the ``async with`` lasts."""
        self.conn = conn
        return self

    async def __aenter__(self) -> SessionTraffic:
        assert self.conn is not None, "use: async with traffic.flowing(conn)"

        def on_text(_selection: str, _text: str) -> None:
            self.counts["host texts received"] += 1

        self.conn.clipboard.on_text.append(on_text)
        for target in (self._cursors, self._host_clipboard):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._task = asyncio.create_task(self._viewer_clipboard())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for thread in self._threads:
            thread.join(10)

        async def detach() -> None:
            for hub in self._hubs:
                hub.close()

        self.host.call(detach())

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
            last = None
            while not self._stop.wait(self.cursor_every):
                root.change_attributes(cursor=glyphs[i % len(glyphs)])
                d.flush()
                i += 1
                shape = self.conn.cursor if self.conn is not None else None
                if shape is not None and shape is not last:
                    last = shape
                    self.counts["cursor shapes seen"] += 1
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
        while True:
            await asyncio.sleep(self.clip_every)
            i += 1
            with contextlib.suppress(ClipboardRefused, TimeoutError):
                await set_text(self.conn, f"viewer {i} {_TEXT}", timeout=5)
                self.counts["viewer texts taken"] += 1
