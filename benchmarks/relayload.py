"""The relay benchmark's load: a relay process, typing-sized sessions through it, round trips.

Used by :mod:`benchmarks.bench_relay`. :func:`relay_process` runs a relay (per-source limits
raised: every peer here is 127.0.0.1) from this tree or :data:`RELAY_TREE` (an older commit's,
for a before/after in one session); the typists and echoing hosts of the sessions benchmark
(:mod:`benchmarks.rawload` runs them in several processes, for either lane);
:func:`round_trips` times one such message direct and through the
relay; :func:`tls_floor` runs a no-op TLS echo process under the same typists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.connection import Connection as WsConnection
from websockets.asyncio.server import serve as ws_serve

from rdesk.client.tls import client_ssl_context
from rdesk.host.relaylink import RelayLink, load_identity
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context

__all__ = ["RELAY_TREE", "cpu_seconds", "relay_process", "round_trips", "tls_floor"]

TYPING_UP, TYPING_DOWN, TYPING_PERIOD = 96, 160, 0.1
_RELAY_SCRIPT = """
import asyncio, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.relay.server import RelayConfig, RelayServer
from rdesk.relay.tokens import TokenStore

async def main():
    data = Path(sys.argv[1])
    cert, key = ensure_host_certificate(data)
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    lots = (1e6, 1_000_000)
    # The raw lane's copier (an older tree has no raw lane: nothing to choose there).
    fields = RelayConfig.__dataclass_fields__
    extra = ({"splicer": sys.argv[3]} if "splicer" in fields
             else {"kernel_splice": sys.argv[3] != "userspace"} if "kernel_splice" in fields
             else {})
    if len(sys.argv) > 5:  # the splice port, and the address told to peers (an emulated link)
        extra.update(splice_port=int(sys.argv[4]), splice_address=sys.argv[5])
    config = RelayConfig(bind="127.0.0.1", port=0, open_enrolment=True, max_sessions=5000,
                         connect_rate=lots, host_rate=lots, id_rate=lots,
                         max_waiting_per_id=1000, **extra)
    server = RelayServer(config, server_ssl_context(cert, key), der, tokens=TokenStore(data))
    await server.start()
    print(server.port, server.fingerprint, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


_ECHO_SCRIPT = """
import asyncio, sys
from pathlib import Path
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context

SIZE = int(sys.argv[2])

class Echo(asyncio.Protocol):
    # The floor: one TLS read and one TLS write per message, nothing else.
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(b"h" * SIZE)

async def main():
    cert, key = ensure_host_certificate(Path(sys.argv[1]))
    server = await asyncio.get_running_loop().create_server(
        Echo, "127.0.0.1", 0, ssl=server_ssl_context(cert, key))
    print(server.sockets[0].getsockname()[1], "-", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
#: The source tree the relay process runs from (``--relay-tree``: an older commit's, for a
#: before/after comparison in the same session); ``None``: this one.
RELAY_TREE: Path | None = None


@contextlib.contextmanager
def relay_process(tmp: Path, script: str = _RELAY_SCRIPT, splicer: str = "kernel",
                  splice: tuple[int, str] | None = None) -> Iterator[tuple[str, int]]:
    """A relay process (limits raised; ``splicer``: the raw lane's copier, ``kernel`` where
    the machine allows it, or ``userspace``; ``splice``: the splice port to bind and the
    ``HOST:PORT`` told to peers instead), or ``script``'s; yields ``(url, pid)``."""
    tree = RELAY_TREE or Path(__file__).resolve().parent.parent
    where = [str(splice[0]), splice[1]] if splice is not None else []
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp / "relay"), str(TYPING_DOWN),
                             splicer, *where],
                            stdout=subprocess.PIPE, text=True, cwd=tree,
                            env={**os.environ, "PYTHONPATH": str(tree)})
    try:
        assert proc.stdout is not None
        port, _ = proc.stdout.readline().split()
        yield f"wss://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _echo(ws: WsConnection) -> None:
    async for message in ws:
        await ws.send(b"h" * TYPING_DOWN if isinstance(message, bytes) else b"")


async def _typist(url: str, host_id: str, stop: asyncio.Event, counts: list[int]) -> None:
    async with ws_connect(url + "/connect", ssl=client_ssl_context(), compression=None,
                          ping_interval=None, max_size=2**20) as ws:
        await ws.send(json.dumps({"t": "connect", "id": host_id, "version": 1}))
        answer = json.loads(await ws.recv())
        assert answer == {"t": "spliced"}, answer
        counts[0] += 1
        payload = b"v" * TYPING_UP
        while not stop.is_set():
            await ws.send(payload)
            await ws.recv()
            counts[1] += TYPING_UP + TYPING_DOWN
            await asyncio.sleep(TYPING_PERIOD)


async def round_trips(samples: int, tmp: Path) -> dict[str, list[float]]:
    """Seconds for a typing-sized message (96 bytes, answered by 160) to go and come back:
    ``direct`` to a TLS websocket echo server, ``relay`` by ID through a relay process to an
    echoing RelayLink host — what the relay adds to every key-to-pixels round trip (two TLS
    hops and the splice), without the capture pipeline's noise. Interleaved, one at a time."""
    times: dict[str, list[float]] = {"direct": [], "relay": []}
    with relay_process(tmp) as (relay, _pid):
        key, der = load_identity(*ensure_host_certificate(tmp / "host"))
        link = RelayLink(relay, key, der, None, None, on_rendezvous=_echo, say=lambda _l: None)
        task = asyncio.ensure_future(link.run())
        await asyncio.wait_for(link.registered.wait(), 60)
        cert, cert_key = ensure_host_certificate(tmp / "direct")
        async with ws_serve(_echo, "127.0.0.1", 0, ssl=server_ssl_context(cert, cert_key),
                            compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            tls = client_ssl_context()
            async with ws_connect(f"wss://127.0.0.1:{port}", ssl=tls, compression=None) as direct, \
                    ws_connect(relay + "/connect", ssl=tls, compression=None) as relayed:
                await relayed.send(json.dumps({"t": "connect", "id": link.host_id, "version": 1}))
                assert json.loads(await relayed.recv()) == {"t": "spliced"}
                payload = b"v" * TYPING_UP
                for i in range(samples + 10):
                    pair = [("direct", direct), ("relay", relayed)]
                    for name, ws in pair if i % 2 else pair[::-1]:
                        start = time.perf_counter()
                        await ws.send(payload)
                        await ws.recv()
                        if i >= 10:  # past the warm-up
                            times[name].append(time.perf_counter() - start)
                    await asyncio.sleep(0.01)
        await link.close()
        await task
    return times


async def _echo_typist(port: int, stop: asyncio.Event, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl_context())
    await type_over(reader, writer, stop, counts)


async def type_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    stop: asyncio.Event, counts: list[int]) -> None:
    """One typist on an open stream until ``stop``: 96 bytes out, 160 back, every 100 ms
    (``counts``: connected, bytes carried); closes the stream."""
    counts[0] += 1
    payload = b"v" * TYPING_UP
    try:
        while not stop.is_set():
            writer.write(payload)
            await reader.readexactly(TYPING_DOWN)
            counts[1] += TYPING_UP + TYPING_DOWN
            await asyncio.sleep(TYPING_PERIOD)
    finally:
        writer.close()


async def tls_floor(level: int, seconds: float, tmp: Path) -> tuple[int, float, float]:
    """A no-op TLS echo process under ``level`` typists: (connected, CPU % of a core, Mbit/s).
    Each message costs it one TLS read and one TLS write, as each costs the relay."""
    with relay_process(tmp, _ECHO_SCRIPT) as (url, pid):
        port = int(url.rsplit(":", 1)[1])
        stop, counts = asyncio.Event(), [0, 0]
        typists = [asyncio.ensure_future(_echo_typist(port, stop, counts))
                   for _ in range(level)]
        for _ in range(600):
            if counts[0] >= level:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        before_bytes, cpu0, t0 = counts[1], cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        stop.set()
        await asyncio.gather(*typists, return_exceptions=True)
    return counts[0], 100 * (cpu1 - cpu0) / (t1 - t0), (counts[1] - before_bytes) * 8 / (
        t1 - t0) / 1e6
