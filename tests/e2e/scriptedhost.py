"""A host that follows a script, for the browser page: it serves the real page (rdesk/site)
over real TLS and speaks the protocol on ``/rdesk`` from the test's orders, so a test can send
the page exactly the updates it wants (H264 rects made with PyAV, hostile ones) and see what
the page answers (acks, ``video``, ``keyframe``, its close).

The server runs on its own event loop in a thread; the test drives it with blocking calls.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.protocol.codec import HEADER, RECT_HEADER, UPDATE_KIND
from rdesk.site.static import StaticSite

TIMEOUT = 30.0


def update_bytes(seq: int, rects: list[tuple[int, int, int, int, int, bytes]],
                 exact: bool = False) -> bytes:
    """A binary update as the wire spells it (no checks: hostile ones too)."""
    parts = [HEADER.pack(UPDATE_KIND, int(exact), len(rects), seq, 0)]
    for x, y, w, h, enc, payload in rects:
        parts.append(RECT_HEADER.pack(x, y, w, h, enc, 0, len(payload)) + payload)
    return b"".join(parts)


class ScriptedHost:
    """Serve one page connection at a time on ``https://127.0.0.1:port/``."""

    def __init__(self, tmp: Path, width: int, height: int) -> None:
        self.tmp = tmp
        self.width, self.height = width, height
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.site = StaticSite()
        self.received: list[dict[str, Any]] = []  # every text message of the page, in order
        self.closed: tuple[int, str] | None = None  # the page's close code and reason
        self.ws: ServerConnection | None = None
        self.seq = 0
        self._changed: asyncio.Condition | None = None
        self.port = 0

    def start(self) -> ScriptedHost:
        self.thread.start()
        self.port = self._run(self._start())
        return self

    def stop(self) -> None:
        try:
            self._run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    # --- orders (blocking, from the test) ----------------------------------------------------

    def wait_for(self, t: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait until the page has sent ``count`` messages of type ``t``; return them all."""
        self._run(self._wait(lambda: len(self._of(t)) >= count, f"{count} {t}"))
        return self._of(t)

    def send_update(self, rects: list[tuple[int, int, int, int, int, bytes]],
                    exact: bool = False, ack: bool = True) -> int:
        """Send one update; with ``ack``, wait until the page has painted and acked it."""
        self.seq += 1
        seq = self.seq
        self._run(self._send(update_bytes(seq, rects, exact)))
        if ack:
            self._run(self._wait(lambda: any(m.get("seq") == seq for m in self._of("ack")),
                                 f"ack {seq}"))
        return seq

    def send_control(self, message: dict[str, Any]) -> None:
        self._run(self._send(json.dumps(message)))

    def wait_closed(self) -> tuple[int, str]:
        self._run(self._wait(lambda: self.closed is not None, "the page's close"))
        assert self.closed is not None
        return self.closed

    # --- inside ---------------------------------------------------------------------------------

    def _of(self, t: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("t") == t]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT + 5)

    async def _start(self) -> int:
        self._changed = asyncio.Condition()
        cert, key = ensure_host_certificate(self.tmp)

        def page(connection: ServerConnection, request: Request) -> Response | None:
            return None if request.path.split("?", 1)[0] == "/rdesk" else self.site.respond(request)

        self.server = await serve(self._handle, "127.0.0.1", 0, ssl=server_ssl_context(cert, key),
                                  process_request=page, max_size=2**20)
        return int(self.server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _wait(self, ready: Any, what: str) -> None:
        assert self._changed is not None
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), TIMEOUT)
            except TimeoutError:
                raise AssertionError(f"the page never sent {what}: {self.received}") from None

    async def _send(self, data: str | bytes) -> None:
        assert self.ws is not None, "no page connected"
        await self.ws.send(data)

    async def _note(self, message: dict[str, Any] | None = None,
                    closed: tuple[int, str] | None = None) -> None:
        assert self._changed is not None
        async with self._changed:
            if message is not None:
                self.received.append(message)
            if closed is not None:
                self.closed = closed
            self._changed.notify_all()

    async def _handle(self, ws: ServerConnection) -> None:
        self.ws = ws
        nonce = base64.b64encode(b"n" * 16).decode()
        await ws.send(json.dumps({"t": "hello", "protocol": "rdesk", "version": 1,
                                  "nonce": nonce, "methods": "password", "server": "script"}))
        try:
            await ws.recv()  # the auth: any password will do
            await ws.send(json.dumps({"t": "welcome", "role": "control", "viewer_id": 1,
                                      "width": self.width, "height": self.height,
                                      "name": "scripted host"}))
            async for frame in ws:
                if isinstance(frame, str):
                    message = json.loads(frame)
                    if message.get("t") == "ping":
                        await ws.send(json.dumps({"t": "pong", "id": message["id"]}))
                    await self._note(message)
        except ConnectionClosed:
            pass
        await self._note(closed=(ws.close_code or 1006, ws.close_reason or ""))
