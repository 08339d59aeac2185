"""Several relay instances for the tests: in this process on one directory, or as processes.

- :func:`instance_pair`: two in-process relays sharing one directory, the in-memory one or a
  real Redis (a client each), each with its own ``public_url`` so rendezvous can be forwarded;
- :class:`Redis`: a ``redis-server`` on a unix socket that a test stops and starts again;
- :func:`relay_process`: a real ``rdesk relay`` process on a Redis, with its output kept;
- :class:`Balancer`: a layer-4 balancer in front of relay processes;
- :func:`forwarding_live`: wait until an instance's subscription for forwarded rendezvous is
  live (until then a viewer on another instance is told ``unknown or offline ID``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from rdesk.relay.directory import Directory, MemoryDirectory
from rdesk.relay.redisdir import RedisDirectory
from tests.relay.harness import Relay, running_relay

REDIS = shutil.which("redis-server")


@contextlib.asynccontextmanager
async def instance_pair(tmp: Path, request: pytest.FixtureRequest, kind: str,
                        **config: Any) -> AsyncIterator[tuple[Relay, Relay, Directory]]:
    """Relays ``a`` and ``b`` on one directory (``kind``: ``memory`` or ``redis``, the
    ``redis_url`` fixture's), and a third handle on that directory for the test's probes."""
    directories: list[Directory]
    if kind == "memory":
        directories = [MemoryDirectory()] * 3
    else:
        url = request.getfixturevalue("redis_url")
        directories = [RedisDirectory(url) for _ in range(3)]
    try:
        async with running_relay(tmp / "relay", directory=directories[0], instance="a",
                                 **config) as a, \
                running_relay(tmp / "relay", directory=directories[1], instance="b",
                              **config) as b:
            for relay in (a, b):
                relay.server.config.public_url = relay.url
            if kind == "redis":
                assert isinstance(directories[2], RedisDirectory)
                await forwarding_live(directories[2], "b")
            yield a, b, directories[2]
    finally:
        for directory in directories:
            if isinstance(directory, RedisDirectory):
                await directory.close()


async def until(predicate: Callable[[], object], what: str, steps: int = 600) -> None:
    """Poll ``predicate()`` (every 50 ms, a bounded number of times)."""
    for _ in range(steps):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def forwarding_live(directory: RedisDirectory, instance: str) -> None:
    """Wait until ``instance`` listens for forwarded rendezvous (its subscription is live)."""
    for _ in range(400):
        with contextlib.suppress(Exception):
            if await directory.forward(instance, b"{}"):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"instance {instance} never subscribed")


class Redis:
    """A redis-server on a unix socket that the test stops and starts again (no persistence)."""

    def __init__(self, tmp: Path) -> None:
        self.sock = tmp / "redis.sock"
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"unix://{self.sock}"

    async def start(self) -> None:
        assert REDIS is not None and self.proc is None
        self.proc = subprocess.Popen(
            [REDIS, "--port", "0", "--unixsocket", str(self.sock), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = RedisDirectory(self.url)
        try:
            for _ in range(400):
                if await probe.ready():
                    return
                assert self.proc.poll() is None, "redis-server exited"
                await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not start")
        finally:
            await probe.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None
            with contextlib.suppress(FileNotFoundError):
                self.sock.unlink()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class RelayProcess:
    """A running ``rdesk relay`` process: its address, instance name and log lines."""

    proc: asyncio.subprocess.Process
    relay: Relay
    instance: str
    #: Lines the process wrote to stderr (its log), as they come.
    log: list[str]
    _reader: asyncio.Task[None]

    def logged(self, text: str) -> int:
        """How many log lines contain ``text``."""
        return sum(text in line for line in self.log)


async def relay_process(tmp: Path, redis_url: str, *flags: str) -> RelayProcess:
    """Start an open ``rdesk relay`` on ``redis_url`` with its own port and ``public_url``
    (one data directory under ``tmp``: every instance has the same certificate)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rdesk", "relay", "--bind", "127.0.0.1", "--port", str(port),
        "--data-dir", str(tmp / "relay"), "--open", "--redis", redis_url,
        "--public-url", f"wss://127.0.0.1:{port}",
        "--splice-port", "0",  # not port + 1: another test's relay may hold that one
        *flags,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None and proc.stderr is not None
    while b"fingerprint" not in (line := await asyncio.wait_for(proc.stdout.readline(), 30)):
        assert line, "relay exited"
    fingerprint = line.decode().split()[-1]
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert b"directory" in line, line  # "rdesk relay: instance NAME (URL), directory URL"
    log: list[str] = []

    async def keep(stream: asyncio.StreamReader) -> None:
        while raw := await stream.readline():
            log.append(raw.decode(errors="replace"))

    reader = asyncio.ensure_future(keep(proc.stderr))
    return RelayProcess(proc, Relay.remote(port, fingerprint), line.split()[3].decode(), log,
                        reader)


async def stop_processes(procs: list[RelayProcess]) -> list[int | None]:
    """SIGTERM each process still running (SIGKILL after 30 s); their exit statuses."""
    for each in procs:
        if each.proc.returncode is None:
            each.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(each.proc.wait(), 30)
            except asyncio.TimeoutError:
                each.proc.kill()
                await each.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(each._reader, 10)
    return [each.proc.returncode for each in procs]


class Balancer:
    """A TCP balancer on 127.0.0.1: each new connection goes to the next live backend in turn
    (a refused one is skipped), bytes copied both ways. Logs which backend took each one."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.turn = 0
        self.log: list[int] = []  # backend index of every accepted connection, in order
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for step in range(len(self.backends)):
            index = (self.turn + step) % len(self.backends)
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                                     self.backends[index])
            except OSError:
                continue
            self.turn = (index + 1) % len(self.backends)
            self.log.append(index)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            return
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Balancer]:
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
