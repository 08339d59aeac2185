"""A loopback TCP proxy that emulates a slow link: rate, one-way delay, jitter.

``tc netem`` is not available on these machines, so tests and benchmarks put this between a
viewer and the host. Each direction is a bottleneck (token bucket at ``rate`` bits/s, FIFO,
bounded buffer of ``buffer`` bytes — when full, the proxy stops reading and TCP pushes back on
the sender, like a router queue) followed by a delay line (``delay`` ± ``jitter`` seconds,
order preserved). Everything can be changed while running with :meth:`LinkProxy.set`. The
proxy stops by itself after ``lifetime`` seconds, so a failed test cannot leave it behind.

Use it on a running event loop (``await LinkProxy(...).start()``), from synchronous code
with :class:`ThreadedLinkProxy`, which runs its own loop in a daemon thread, or as a process
of its own (benchmarks do, so that the viewer's CPU work cannot delay the link)::

    python -m tests.linkproxy TARGET_PORT --rate 2e6 --delay 0.04 --lifetime 120

which prints the port it listens on and serves until its lifetime ends or stdin closes; then
it prints the bytes it delivered down (to the viewer) and up (to the host). Or::

    with ThreadedLinkProxy(target_port, rate=2e6, delay=0.04) as proxy:
        url = f"wss://127.0.0.1:{proxy.port}"
        ...
        proxy.set(rate=512e3)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import sys
import threading
import time
from typing import Any

__all__ = ["LinkProxy", "ThreadedLinkProxy", "main", "on_wire_until"]

#: Bytes moved through the bottleneck as one unit (about a TCP segment burst).
CHUNK = 4096


def on_wire_until(free: float, arrived: float, nbytes: int, rate: float) -> float:
    """When a chunk of ``nbytes`` that ``arrived`` at the bottleneck has left it, on a link of
    ``rate`` bits/s that is ``free`` from then on: it starts when both the link is free and
    it is there, whatever time the emulator's task got round to it (pure: no clock)."""
    return max(free, arrived) + nbytes * 8 / rate


class _Direction:
    """One way through the link: bottleneck, then delay line, then the destination socket."""

    def __init__(self, link: LinkProxy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.link = link
        self.reader = reader
        self.writer = writer
        #: (arrival time, bytes) waiting at the bottleneck.
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.queued = 0
        self.room = asyncio.Event()
        self.room.set()
        self.data = asyncio.Event()
        self.line: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        self.last_delivery = 0.0
        self.bytes = 0

    async def read(self) -> None:
        try:
            while True:
                while self.queued >= self.link.buffer:
                    self.room.clear()
                    await self.room.wait()
                data = await self.reader.read(CHUNK)
                if not data:
                    break
                self.queue.append((time.monotonic(), data))
                self.queued += len(data)
                self.data.set()
        finally:
            self.queue.append((time.monotonic(), b""))  # end of stream
            self.data.set()

    async def bottleneck(self) -> None:
        free = time.monotonic()
        while True:
            while not self.queue:
                self.data.clear()
                await self.data.wait()
            arrived, chunk = self.queue.popleft()
            self.queued -= len(chunk)
            self.room.set()
            if not chunk:
                await self.line.put((0.0, None))
                return
            # The chunk goes on the wire when the link is free or when it arrived, whichever
            # is later: not when this task got round to it. Starting it at "now" lost every
            # late wake of the sleep below (asyncio timers come 0.1-1 ms late, more on a busy
            # machine) and made a 10 Mbit/s link carry 77 % of its rate to a plain TCP bulk.
            free = on_wire_until(free, arrived, len(chunk), self.link.rate)
            now = time.monotonic()
            if free - now > 0.001:
                await asyncio.sleep(free - now)
            jitter = random.uniform(0, self.link.jitter) if self.link.jitter else 0.0
            deliver = max(free + self.link.delay + jitter, self.last_delivery)
            self.last_delivery = deliver
            await self.line.put((deliver, chunk))

    async def deliver(self) -> None:
        while True:
            at, chunk = await self.line.get()
            if chunk is None:
                with contextlib.suppress(Exception):
                    self.writer.write_eof()
                return
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.writer.write(chunk)
            self.bytes += len(chunk)
            await self.writer.drain()


class LinkProxy:
    """Listen on 127.0.0.1 and forward every connection to ``target`` through the emulated link.

    :param rate: bottleneck rate in bits per second, each direction.
    :param delay: one-way delay in seconds (the round trip adds twice this).
    :param jitter: extra one-way delay, uniform in [0, jitter] seconds (order is kept).
    :param buffer: bytes the bottleneck may queue per direction before pushing back.
    :param lifetime: seconds after which the proxy closes everything by itself.
    """

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1", rate: float = 100e6,
                 delay: float = 0.0, jitter: float = 0.0, buffer: int = 256 * 1024,
                 lifetime: float = 300.0) -> None:
        self.target = (target_host, target_port)
        self.rate, self.delay, self.jitter, self.buffer = rate, delay, jitter, buffer
        self.lifetime = lifetime
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._expiry: asyncio.TimerHandle | None = None
        #: Bytes delivered host→viewer ("down") and viewer→host ("up") by connections that
        #: ended (:meth:`totals` adds the live ones).
        self.down_bytes = 0
        self.up_bytes = 0
        self._live: list[tuple[_Direction, _Direction]] = []

    def set(self, *, rate: float | None = None, delay: float | None = None,
            jitter: float | None = None) -> None:
        """Change the link while it runs (takes effect for the next chunk)."""
        if rate is not None:
            self.rate = rate
        if delay is not None:
            self.delay = delay
        if jitter is not None:
            self.jitter = jitter

    def totals(self) -> tuple[int, int]:
        """Bytes delivered (down, up) so far, by every connection, live or ended: the link's
        own bytes (TLS records, websocket frames and what they carry), not TCP/IP headers."""
        return (self.down_bytes + sum(down.bytes for down, _ in self._live),
                self.up_bytes + sum(up.bytes for _, up in self._live))

    async def start(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(self.lifetime, lambda: loop.create_task(self.close()))
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]
        down = _Direction(self, up_reader, writer)
        up = _Direction(self, reader, up_writer)
        stages = [d.read() for d in (down, up)] + [d.bottleneck() for d in (down, up)]
        stages += [d.deliver() for d in (down, up)]
        tasks = [asyncio.create_task(c) for c in stages]
        self._tasks.update(tasks)
        self._live.append((down, up))
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._live.remove((down, up))
            self.down_bytes += down.bytes
            self.up_bytes += up.bytes
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.difference_update(tasks)

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        if self._expiry is not None:
            self._expiry.cancel()
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> LinkProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ThreadedLinkProxy:
    """A :class:`LinkProxy` on its own event loop in a daemon thread (for synchronous code)."""

    def __init__(self, target_port: int, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.proxy = LinkProxy(target_port, **kwargs)

    @property
    def port(self) -> int:
        return self.proxy.port

    def set(self, **kwargs: float) -> None:
        self.loop.call_soon_threadsafe(lambda: self.proxy.set(**kwargs))

    def start(self) -> ThreadedLinkProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def __enter__(self) -> ThreadedLinkProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _serve(args: Any) -> None:
    async with LinkProxy(args.target_port, rate=args.rate, delay=args.delay,
                         jitter=args.jitter, lifetime=args.lifetime) as proxy:
        print(proxy.port, flush=True)
        loop = asyncio.get_running_loop()
        # Serve until stdin closes (the parent went away) or the lifetime ends.
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        expired = asyncio.ensure_future(asyncio.sleep(args.lifetime))
        await asyncio.wait([stdin_closed, expired], return_when=asyncio.FIRST_COMPLETED)
        expired.cancel()
        down, up = proxy.totals()
        print(down, up, flush=True)  # what crossed the link, for the parent to read


def main(argv: list[str] | None = None) -> int:
    """Run one proxy as a process: print its port, serve until stdin closes."""
    import argparse

    parser = argparse.ArgumentParser(description="loopback link-emulating TCP proxy")
    parser.add_argument("target_port", type=int)
    parser.add_argument("--rate", type=float, default=100e6, help="bits per second")
    parser.add_argument("--delay", type=float, default=0.0, help="one-way seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="extra one-way seconds")
    parser.add_argument("--lifetime", type=float, default=300.0, help="seconds")
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
