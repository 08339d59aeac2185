"""Typing-sized sessions through a relay on either lane, offered by several load processes.

Used by :mod:`benchmarks.bench_relay` (``--sessions-only --lane raw|ws``). One process cannot
offer 10 Mbit/s of 256-byte round trips at 500 sessions with TLS at both ends on this machine,
so :func:`sessions` starts ``workers`` load processes (``python -m benchmarks.rawload``), each
with its share of the hosts (real :class:`RelayLink` objects) and of the typists. On the
**raw** lane a host is a TLS server on its raw socket (its own certificate, as ``rdesk host``
is) answering 160 bytes to each 96, and a typist goes to the splice port with its ticket and
runs TLS with the host; on the **ws** lane both are websockets through the splice, as
:mod:`benchmarks.relayload` measures them. Only the relay process's CPU is measured; the
bytes counted are each worker's between the same two marks.

Worker protocol (stdin/stdout lines): the worker prints ``ready N`` once its N typists type;
each ``mark`` line read is answered with the bytes carried so far; ``stop`` ends it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.relayload import (
    TYPING_DOWN,
    TYPING_UP,
    _echo,
    _typist,
    cpu_seconds,
    relay_process,
    type_over,
)
from rdesk.client.tls import client_ssl_context
from rdesk.host.relaylink import RelayLink, load_identity
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.tunnel.rawdial import dial_splice_port

__all__ = ["sessions"]


class _Answer(asyncio.Protocol):
    """The echoing host's end: 160 bytes for each 96 received (TLS keeps a message whole)."""

    def __init__(self, ended: asyncio.Future[None]) -> None:
        self.ended = ended

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"h" * (TYPING_DOWN * max(1, len(data) // TYPING_UP)))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


def _raw_host(ctx: ssl.SSLContext) -> Callable[[socket.socket], Awaitable[None]]:
    async def serve(sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        await loop.connect_accepted_socket(lambda: _Answer(ended), sock, ssl=ctx)
        await ended

    return serve


async def _raw_typist(url: str, host_id: str, stop: asyncio.Event, counts: list[int]) -> None:
    from websockets.asyncio.client import connect as ws_connect

    async with ws_connect(url + "/connect?lanes=raw,ws", ssl=client_ssl_context(),
                          compression=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"t": "connect", "id": host_id, "version": 1}))
        answer = json.loads(await ws.recv())
        assert answer["t"] == "raw", answer
        sock = await dial_splice_port("127.0.0.1", answer["port"],
                                      base64.b64decode(answer["ticket"]))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=client_ssl_context(),
                                                   server_hostname="rdesk")
    await type_over(reader, writer, stop, counts)


async def _worker(url: str, lane: str, first: int, count: int, hosts: int, tmp: Path) -> None:

    links = []
    for i in range(first, first + hosts):
        cert, key = ensure_host_certificate(tmp / f"h{i}")
        private, der = load_identity(cert, key)
        on_raw = _raw_host(server_ssl_context(cert, key)) if lane == "raw" else None
        links.append(RelayLink(url, private, der, None, None, on_rendezvous=_echo,
                               on_raw=on_raw, say=lambda _l: None))
    tasks = [asyncio.ensure_future(link.run()) for link in links]
    await asyncio.gather(*(asyncio.wait_for(link.registered.wait(), 120) for link in links))
    stop, counts = asyncio.Event(), [0, 0]
    typist = _raw_typist if lane == "raw" else _typist
    typists: list[asyncio.Future[None]] = []
    while len(typists) < count:  # in batches: a loaded machine times handshakes out
        batch = min(count - len(typists), 25)
        typists += [asyncio.ensure_future(typist(url, links[(len(typists) + i) % hosts].host_id,
                                                 stop, counts)) for i in range(batch)]
        for _ in range(300):
            if counts[0] >= len(typists) or all(t.done() for t in typists[-batch:]):
                break
            await asyncio.sleep(0.1)
    print(f"ready {counts[0]}", flush=True)
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "mark":
        print(counts[1], flush=True)
    stop.set()
    await asyncio.gather(*typists, return_exceptions=True)
    for link in links:
        await link.close()
    for task in tasks:
        task.cancel()


def _out(proc: subprocess.Popen[str]) -> IO[str]:
    assert proc.stdout is not None
    return proc.stdout


def _mark(procs: list[subprocess.Popen[str]]) -> int:
    """The bytes the workers carried so far, all asked at once."""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("mark\n")
        p.stdin.flush()
    return sum(int(_out(p).readline()) for p in procs)


def sessions(levels: list[int], seconds: float, hosts: int, tmp: Path, lane: str,
             workers: int, splicer: str) -> list[tuple[int, int, float, float]]:
    """(asked, connected, relay CPU % of a core, Mbit/s carried) for each level."""
    rows = []
    with relay_process(tmp, splicer=splicer) as (url, pid):
        for level in levels:
            procs: list[subprocess.Popen[str]] = []
            for w in range(workers):
                share = level // workers + (1 if w < level % workers else 0)
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.rawload", url, lane,
                     str(w * hosts), str(share), str(max(1, hosts // workers)), str(tmp)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                    cwd=Path(__file__).resolve().parent.parent,
                    env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}))
            try:
                connected = sum(int(_out(p).readline().split()[1]) for p in procs)
                time.sleep(1.0)
                bytes0, cpu0, t0 = _mark(procs), cpu_seconds(pid), time.monotonic()
                time.sleep(seconds)
                bytes1, cpu1, t1 = _mark(procs), cpu_seconds(pid), time.monotonic()
            finally:
                for p in procs:
                    p.communicate("stop\n", timeout=120)
            rows.append((level, connected, 100 * (cpu1 - cpu0) / (t1 - t0),
                         (bytes1 - bytes0) * 8 / (t1 - t0) / 1e6))
    return rows


if __name__ == "__main__":
    url, lane, first, count, hosts, tmp = sys.argv[1:7]
    asyncio.run(_worker(url, lane, int(first), int(count), int(hosts), Path(tmp)))
