"""What a real typing session puts on the wire: the relay benchmark's load, checked.

The relay splices ciphertext, so what it costs per Mbit/s depends on how many reads and writes
that Mbit/s takes: the size of what each end sends at once. ``bench_rawsplice.py`` and
``bench_relay.py`` model a typist as 96 bytes up answered by 160 down every 100 ms. This script
measures a real session instead: a real host on Xvfb sharing an ``xterm`` (running ``cat``, so
every key echoes), a real viewer (the client library) typing a sentence at a human pace over
TLS websockets, and between them a TCP proxy (Nagle off both ways, as the host and viewer
have it) that records the size of every chunk each side's read returned, per direction.

    python benchmarks/bench_typing_wire.py [--rate 6] [--seconds 20] [--runs 3]

Printed per run: keys typed, chunks and bytes a key each way, the mean and median chunk, and
the session's bytes a second. A chunk is what one read returned: at typing pace each is one
TLS record (a key press, a release, an ack, one screen update), the unit a relay reads,
forwards and pays for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_links import machine_line
from benchmarks.injecting import Injectors
from rdesk.client.connection import connect
from tests.e2e.conftest import PASSWORD, HostThread
from tests.xserver import Xvfb

TEXT = "the quick brown fox jumps over the lazy dog, 0123456789. "


class ChunkProxy:
    """A TCP proxy to ``port`` on 127.0.0.1 that records each read's size per direction."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.chunks: dict[str, list[int]] = {"up": [], "down": []}
        self.recording = False

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str) -> None:
        try:
            while data := await reader.read(65536):
                if self.recording:
                    self.chunks[direction].append(len(data))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # either end went away: the session is over
        finally:
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Join one viewer connection to the host."""
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        for sock in (writer.get_extra_info("socket"), up_writer.get_extra_info("socket")):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(self._pump(reader, up_writer, "up"),
                             self._pump(up_reader, writer, "down"))


async def run(rate: float, seconds: float, tmp: Path) -> tuple[int, float, ChunkProxy]:
    """Type at ``rate`` keys a second for ``seconds``; the keys typed, the time, the chunks."""
    with Xvfb(1920, 1080) as xvfb:
        env = dict(os.environ, DISPLAY=xvfb.display)
        term = subprocess.Popen(["xterm", "-geometry", "100x40+50+50", "-e", "cat"], env=env,
                                stderr=subprocess.DEVNULL)
        make_injector = Injectors()

        thread = HostThread(xvfb.display, tmp, injector=make_injector)
        host = thread.start()
        try:
            host_port = int(host.url.rstrip("/").rsplit(":", 1)[1])
            proxy = ChunkProxy(host_port)
            server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
            url = host.url.replace(f":{host_port}", f":{server.sockets[0].getsockname()[1]}")
            conn = await connect(url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
            try:
                await conn.wait_exact(30)
                await conn.pointer(400, 300)  # over the xterm: no window manager, focus follows
                await asyncio.sleep(1.0)
                proxy.recording = True
                start, keys = time.monotonic(), 0
                while time.monotonic() - start < seconds:
                    keysym = ord(TEXT[keys % len(TEXT)])
                    held = random.uniform(0.03, 0.07)
                    await conn.key(keysym, True)
                    await asyncio.sleep(held)
                    await conn.key(keysym, False)
                    keys += 1
                    await asyncio.sleep(max(0.0, random.uniform(0.5, 1.5) / rate - held))
                await asyncio.sleep(0.5)  # the last echo and its ack
                proxy.recording = False
                elapsed = time.monotonic() - start
            finally:
                await conn.close()
                server.close()
        finally:
            thread.stop()
            term.kill()
            term.wait()
            make_injector.close()
    return keys, elapsed, proxy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=6.0, help="keys a second (6)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print("| run | keys/s | up chunks/key | up bytes/key | down chunks/key | down bytes/key "
          "| mean chunk | median chunk | session bytes/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            keys, elapsed, proxy = asyncio.run(run(args.rate, args.seconds, Path(tmp)))
        up, down = proxy.chunks["up"], proxy.chunks["down"]
        both = up + down
        print(f"| {i + 1} | {keys / elapsed:.1f} | {len(up) / keys:.2f} | {sum(up) / keys:.0f} "
              f"| {len(down) / keys:.2f} | {sum(down) / keys:.0f} | {statistics.mean(both):.0f} "
              f"| {statistics.median(both):.0f} | {sum(both) / elapsed:.0f} |")
    print(machine_line(args.seconds, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
