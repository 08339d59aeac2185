"""A real relay and a real host registered on it, as processes, for the relay's e2e tests.

:func:`site` starts ``rdesk relay --open`` on 127.0.0.1 and ``rdesk host --relay --no-listen``
on a display (its audit log in ``TMP/host-audit.jsonl``); :meth:`Site.cli` runs a viewer verb
by ID through a relay port as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image

from tests.e2e.conftest import PASSWORD
from tests.xserver import Painter, Recorder, assert_images_equal

REPO = Path(__file__).resolve().parents[2]


#: What plaintext of a session would hold, and ciphertext must not: the password, the
#: protocol's own JSON keys, and the screen's pictures by their whole signatures (PNG's 8
#: bytes; simplejpeg's JPEGs start with their JFIF header, 11 bytes). A shorter marker turns
#: up in ciphertext by chance: JPEG's 3-byte start of image about once in 16 MB of random
#: bytes, so in a run or two in a hundred of these tests, and it failed a fresh-clone CI run.
PLAINTEXT_MARKERS = (PASSWORD.encode(), b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF",
                     b'"key"', b"keysym", b'"auth"')


def assert_only_ciphertext(seen: bytes, *more: bytes) -> None:
    """No marker of plaintext (:data:`PLAINTEXT_MARKERS` and ``more``) is in ``seen``."""
    for secret in PLAINTEXT_MARKERS + more:
        assert secret not in seen, secret


async def read_line(stream: asyncio.StreamReader, marker: str, timeout: float = 60) -> str:
    async def find() -> str:
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"ended before {marker!r}")
            line = raw.decode()
            if marker in line:
                return line

    return await asyncio.wait_for(find(), timeout)


async def spawn(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def stop(proc: asyncio.subprocess.Process | None) -> None:
    if proc is not None and proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


class Site:
    """A relay process and a host process registered on it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.relay: asyncio.subprocess.Process | None = None
        self.host: asyncio.subprocess.Process | None = None
        self.port = 0
        self.pin = ""
        self.host_id = ""
        self.password_file = tmp / "password"
        self.password_file.write_text(PASSWORD + "\n")

    async def start_relay(self, port: int = 0, extra: tuple[str, ...] = ()) -> None:
        self.relay = await spawn("-m", "rdesk", "relay", "--bind", "127.0.0.1", "--port",
                                  str(port), "--open", "--grace", "0",
                                  "--data-dir", str(self.tmp / "relay"),
                                  "--audit-log", str(self.tmp / "relay-audit.jsonl"),
                                  "--splice-port", "0",  # a restart on a fixed port: not +1
                                  *extra)
        assert self.relay.stdout is not None
        line = await read_line(self.relay.stdout, "listening on")
        self.port = int(line.rsplit(":", 1)[1])
        self.pin = (await read_line(self.relay.stdout, "fingerprint")).split()[-1]

    async def start_host(self, display: str, name: str = "host", *, listen: bool = False,
                         extra: tuple[str, ...] = ()) -> asyncio.subprocess.Process:
        """A host registered on the relay, with ``extra`` host flags; ``listen``: also on a
        free port of 127.0.0.1 (its banner's lines are kept in :attr:`banner`)."""
        where = ["--bind", "127.0.0.1", "--port", "0"] if listen else ["--no-listen"]
        host = await spawn("-m", "rdesk", "--config-dir", str(self.tmp / name), "host",
                           "--display", display, "--capture", "mss", *where,
                           "--password-file", str(self.password_file),
                           "--audit-log", str(self.tmp / f"{name}-audit.jsonl"),
                           "--relay", f"wss://127.0.0.1:{self.port}",
                           "--relay-fingerprint", self.pin, *extra)
        assert host.stdout is not None
        self.banner: list[str] = []
        while "registered as" not in (line := await read_line(host.stdout, "")):
            self.banner.append(line)
        if name == "host":
            self.host, self.host_id = host, line.split()[3]
        return host

    async def snapshot_and_type(self, relay_port: int, display: str, seed: int,
                                typed: str) -> None:
        """By ID through ``relay_port``: ``rdesk snapshot`` equals what a real X client drew,
        and ``rdesk type`` reaches a real X client."""
        with Painter(display, seed=seed) as painter:
            shot = self.tmp / f"shot-{seed}.png"
            code, _, err = await self.cli(relay_port, "snapshot", self.host_id, "-o", str(shot))
            assert code == 0, err
            assert_images_equal(Image.open(shot).convert("RGB"), painter.expected())
        with Recorder(display) as recorder:
            recorder.wait_idle()
            recorder.clear()
            code, _, err = await self.cli(relay_port, "type", self.host_id, typed)
            assert code == 0, err
            assert recorder.wait_for_text(typed) == typed

    def relay_events(self, kind: str) -> list[dict[str, object]]:
        """The relay's audit events of ``kind`` so far."""
        log = self.tmp / "relay-audit.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        return [e for e in map(json.loads, lines) if e.get("kind") == kind]

    async def cli(self, relay_port: int, *args: str, timeout: float = 90
                  ) -> tuple[int, str, str]:
        proc = await spawn("-m", "rdesk", "--config-dir", str(self.tmp / "viewer"), *args,
                            "--relay", f"wss://127.0.0.1:{relay_port}",
                            "--password-file", str(self.password_file))
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def site(tmp: Path, display: str, *, listen: bool = False,
               extra: tuple[str, ...] = (), relay: tuple[str, ...] = ()) -> AsyncIterator[Site]:
    """A relay (``relay``: its extra flags) and a host registered on it (``extra``: its)."""
    s = Site(tmp)
    try:
        await s.start_relay(extra=relay)
        await s.start_host(display, listen=listen, extra=extra)
        yield s
    finally:
        await stop(s.host)
        await stop(s.relay)
