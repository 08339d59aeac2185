"""The desktop viewer's network side: one connection at a time, on a private asyncio loop.

A :class:`Worker` runs in its own thread with its own event loop. It connects (asking the
window, through ``post``, for a password or whether to trust an unknown host key), keeps
the connection while it lasts, and after a drop reconnects with a backoff doubling from
:data:`RECONNECT_MIN` to :data:`RECONNECT_MAX` seconds, counting down in the status line.
Input the window queues with :meth:`Worker.send` goes out in order from one sender task;
input while disconnected is dropped, not replayed later. A pinger asks for a round trip
every :data:`PING_EVERY` seconds for the stats overlay (the session's one ping slot: it also
keeps the connection, see :meth:`rdesk.client.connection.Connection.ping`).

What the window learns, it learns from ``post(kind, *args)``, called on this thread:
``status``, ``connected``, ``lost``, ``password``, ``unknown_key``, ``changed_key``, ``fatal``.
A question (``password``, ``unknown_key``) carries a ``concurrent.futures.Future`` the
window answers; ``None`` means cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from rdesk.client.connection import (
    AuthenticationFailed,
    ConnectError,
    Connection,
    HostAddress,
    connect,
    parse_url,
)
from rdesk.client.known_hosts import HostKeyMismatch, KnownHosts, UnknownHostKey
from rdesk.client.tk.options import ViewerOptions
from rdesk.common.waiting import wait_at_most

__all__ = ["PING_EVERY", "RECONNECT_MAX", "RECONNECT_MIN", "Cancelled", "Worker"]

#: Reconnect backoff, seconds: doubles from MIN after each failed attempt, up to MAX.
RECONNECT_MIN = 0.5
RECONNECT_MAX = 8.0
#: Seconds between pings that measure the round-trip time for the overlay.
PING_EVERY = 1.0


class Cancelled(Exception):
    """The user cancelled a dialog the connection was waiting for."""


class Worker:
    """The connection, its reconnects and the input sender, on a private asyncio loop.

    The public methods are called from the window's thread; everything else runs on the
    worker's loop thread.
    """

    def __init__(self, options: ViewerOptions, post: Callable[..., None],
                 on_update: Callable[[list[tuple[int, int, int, int]]], None]) -> None:
        self.options = options
        self.address: HostAddress = parse_url(options.url)
        self.post = post
        self.on_update = on_update
        self.pinned = options.fingerprint
        self.conn: Connection | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="rdesk-viewer-net", daemon=True)
        self._password: str | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._outbox: asyncio.Queue[tuple[str, tuple[int, ...]]] = asyncio.Queue()
        self._questions: list[concurrent.futures.Future[Any]] = []
        self._closing_task: asyncio.Future[None] | None = None

    # called from the Tk thread

    def start(self) -> None:
        self.thread.start()

    def send(self, kind: str, *args: int) -> None:
        """Queue one input event (``pointer``, ``wheel``, ``key``) for the host, in order."""
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(self._outbox.put_nowait, (kind, args))

    def reconnect(self) -> None:
        """Drop the connection (if any) and connect again at once."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._reconnect)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the connection cleanly and join the thread."""
        for question in self._questions:
            if not question.done():
                question.set_result(None)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._stopping.set)
        self.thread.join(timeout)

    # the loop thread

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._run())
        finally:
            self.loop.close()

    def _reconnect(self) -> None:
        self._wake.set()
        if self.conn is not None:
            self._closing_task = asyncio.ensure_future(self.conn.close())

    async def _run(self) -> None:
        helpers = [asyncio.create_task(self._sender()), asyncio.create_task(self._pinger())]
        try:
            await self._supervise()
        except Exception as exc:  # a bug: say so rather than die silently
            self.post("fatal", f"viewer error: {type(exc).__name__}: {exc}")
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self.conn is not None:
                await self.conn.close()
                self.conn = None

    async def _supervise(self) -> None:
        delay = RECONNECT_MIN
        connected_once = False
        while not self._stopping.is_set():
            self.post("status", f"connecting to {self.address}…")
            try:
                conn = await self._until_stopped(self._connect())
            except UnknownHostKey as exc:
                trusted = await self._ask("unknown_key", exc.fingerprint)
                if not trusted:
                    self.post("fatal", f"{self.address}: host key not trusted; nothing was sent")
                    return
                KnownHosts(self.options.known_hosts).add(
                    self.address.host, self.address.port, exc.fingerprint
                )
                self.pinned = exc.fingerprint
                continue
            except HostKeyMismatch as exc:
                self.post("changed_key", exc)
                return
            except AuthenticationFailed as exc:
                self._password = None
                if self.options.password is not None:
                    self.post("fatal", str(exc))
                    return
                self.post("status", str(exc))
                continue  # the dialog asks again
            except Cancelled:
                self.post("fatal", "cancelled; nothing was sent")
                return
            except ConnectError as exc:
                if not connected_once:
                    self.post("fatal", str(exc))
                    return
                reason = str(exc)
            else:
                if conn is None:  # stopping
                    return
                if not connected_once and self.options.monitor is not None:
                    await conn.select_monitor(self.options.monitor)  # --monitor, once
                connected_once = True
                delay = RECONNECT_MIN
                # The same key, and only it, from now on (a restarted host keeps its key) —
                # unless a CA file vouches for the host: a renewal may bring a new key.
                context = self.options.ssl_context
                if context is None or context.verify_mode != ssl.CERT_REQUIRED:
                    self.pinned = conn.host_fingerprint
                self.conn = conn
                conn.on_update(self.on_update)
                self.post("connected", conn)
                await self._until_stopped(asyncio.shield(conn.closed))
                self.conn = None
                if self._stopping.is_set():
                    await conn.close()
                    return
                lost = conn.closed.result()
                reason = str(lost)
            if self._wake.is_set():
                self._wake.clear()
                continue
            await self._countdown(reason, delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _countdown(self, reason: str, delay: float) -> None:
        end = time.monotonic() + delay
        while not self._stopping.is_set() and not self._wake.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            self.post("lost", f"connection lost — reconnecting in {left:.0f} s", reason)
            await wait_at_most(self._wake.wait(), min(left, 1.0))
        self._wake.clear()

    async def _until_stopped(self, awaitable: Any) -> Any:
        """Await ``awaitable`` unless the window closes first (then return ``None``)."""
        task = asyncio.ensure_future(awaitable)
        stopping = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            result = await task
            if isinstance(result, Connection):
                await result.close()
        return None

    async def _connect(self) -> Connection:
        known = KnownHosts(self.options.known_hosts)
        return await connect(
            self.address,
            self._get_password,
            known_hosts=known,
            pinned=self.pinned,
            accept_new=self.options.accept_new,
            name=self.options.name,
            timeout=self.options.timeout,
            ssl_context=self.options.ssl_context,
            video=self.options.video,
            max_pixels=self.options.max_pixels,
        )

    def _get_password(self) -> str:
        # Called by connect() once the host key was accepted, on this loop's thread: blocking
        # here while the user types only holds up this connection attempt.
        if self._password is not None:
            return self._password
        if self.options.password is not None:
            self._password = self.options.password()
            return self._password
        future: concurrent.futures.Future[str | None] = concurrent.futures.Future()
        self._questions.append(future)
        self.post("password", future)
        answer = future.result()
        if answer is None:
            raise Cancelled()
        self._password = answer
        return answer

    async def _ask(self, kind: str, *args: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._questions.append(future)
        self.post(kind, future, *args)
        return await asyncio.wrap_future(future)

    async def _sender(self) -> None:
        while True:
            kind, args = await self._outbox.get()
            conn = self.conn
            if conn is None or conn.closed.done():
                continue  # input while disconnected is dropped, not replayed later
            with contextlib.suppress(ConnectError):
                if kind == "pointer":
                    await conn.pointer(*args)
                elif kind == "wheel":
                    await conn.wheel(*args)
                elif kind == "key":
                    await conn.key(args[0], bool(args[1]))

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY)
            conn = self.conn
            if conn is not None and not conn.closed.done():
                with contextlib.suppress(ConnectError):
                    await conn.ping()
