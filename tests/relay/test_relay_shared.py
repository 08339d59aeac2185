"""Two relay instances sharing a directory (a real Redis, or one in-process directory).

The shared directory binds an ID to its key across instances and lets the newest registration
of a host win everywhere. A viewer reaching an instance other than its host's is spliced when
the instances have their own addresses (the rendezvous is forwarded, and the host opens its
data connection at the viewer's instance), and told so in one line when they do not.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from rdesk.relay.directory import Directory, MemoryDirectory
from rdesk.relay.messages import Refused
from rdesk.relay.redisdir import RedisDirectory
from tests.relay.harness import (
    Relay,
    host_identity,
    linked,
    make_link,
    other_tasks,
    quiet,
    running_relay,
    try_register,
    viewer,
)


async def test_the_newest_registration_wins_across_instances(tmp_path: Path,
                                                             redis_url: str) -> None:
    shared_a, shared_b = RedisDirectory(redis_url), RedisDirectory(redis_url)
    async with running_relay(tmp_path / "relay", directory=shared_a, heartbeat=1.0,
                             instance="a") as a, \
            running_relay(tmp_path / "relay", directory=shared_b, heartbeat=1.0,
                          instance="b") as b:
        identity = host_identity(tmp_path / "host")
        on_a = make_link(a, identity, backoff=(30.0, 30.0))
        async with linked(on_a):
            ws, answer = await viewer(b, on_a.host_id)
            assert answer == {"t": "refused",
                              "reason": "the host is registered on another relay instance"}
            await ws.wait_closed()
            async with linked(make_link(b, identity)) as on_b:
                # a's connection learns at its next heartbeat that b holds the ID now
                while on_a.registered.is_set():
                    await asyncio.sleep(0.05)
                assert on_a.last_error == "the registration was replaced or expired"
                ws, answer = await viewer(b, on_b.host_id)
                assert answer == {"t": "spliced"}
                await ws.send(b"via b")
                assert await ws.recv() == b"host:via b"
                await ws.close()
                await quiet(a)
                await quiet(b, hosts=1)
            await quiet(b)
        assert await shared_a.lookup(on_a.host_id, a.server.wall_clock()) is None
    await shared_a.close()
    await shared_b.close()
    assert not other_tasks()


async def test_a_relay_whose_redis_is_down_is_not_ready_and_refuses_in_one_line(
    tmp_path: Path,
) -> None:
    down = RedisDirectory(f"unix://{tmp_path}/no-redis.sock")
    async with running_relay(tmp_path / "relay", directory=down) as relay:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port, ssl=ctx)
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = (await reader.read()).split(b"\r\n", 1)[0]
        writer.close()
        assert status == b"HTTP/1.1 503 Service Unavailable"
        ws, answer = await viewer(relay, "0000-0000-00000")
        assert answer == {"t": "refused", "reason": "the relay's directory is unavailable"}
        await ws.wait_closed()
        assert ws.close_code == 1011
        ws, refusal = await try_register(relay, host_identity(tmp_path / "host"))
        assert refusal == Refused("the relay's directory is unavailable")
        await ws.wait_closed()
        await quiet(relay)
    await down.close()
    assert not other_tasks()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_viewer_on_another_instance_is_spliced_through_a_forwarded_rendezvous(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str,
) -> None:
    directories: list[Directory]
    if kind == "memory":
        shared = MemoryDirectory()
        directories = [shared, shared]
    else:
        url = request.getfixturevalue("redis_url")
        directories = [RedisDirectory(url), RedisDirectory(url)]
    async with running_relay(tmp_path / "relay", directory=directories[0], instance="a") as a, \
            running_relay(tmp_path / "relay", directory=directories[1], instance="b") as b:
        for relay in (a, b):
            relay.server.config.public_url = relay.url
        link = make_link(a, host_identity(tmp_path / "host"))
        async with linked(link):
            if kind == "redis":  # b's subscription is live once a forward reaches a listener
                while not await directories[0].forward("b", b"{}"):
                    await asyncio.sleep(0.05)
            ws, answer = await viewer(b, link.host_id)
            assert answer == {"t": "spliced"}
            await ws.send(b"across instances")
            assert await ws.recv() == b"host:across instances"
            await ws.close()
            await quiet(b)
            await quiet(a, hosts=1)
        assert b.last("rendezvous") == {"source": "127.0.0.1", "id": link.host_id,
                                        "session": b.last("splice_end")["session"], "via": "a"}
        assert "splice_end" not in a.kinds()  # the splice ran on the viewer's instance
    for directory in directories:
        if isinstance(directory, RedisDirectory):
            await directory.close()
    assert not other_tasks()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_the_per_id_limit_is_shared_by_the_instances(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str,
) -> None:
    directories: list[Directory]
    if kind == "memory":
        shared = MemoryDirectory()
        directories = [shared, shared]
    else:
        url = request.getfixturevalue("redis_url")
        directories = [RedisDirectory(url), RedisDirectory(url)]
    limits = {"id_rate": (0.0001, 3), "connect_rate": (1000.0, 1000)}  # no refill: the burst
    async with running_relay(tmp_path / "relay", directory=directories[0], instance="a",
                             **limits) as a, \
            running_relay(tmp_path / "relay", directory=directories[1], instance="b",
                          **limits) as b:
        for relay in (a, b):
            relay.server.config.public_url = relay.url
        link = make_link(a, host_identity(tmp_path / "host"))
        async with linked(link):
            if kind == "redis":  # b's subscription is live once a forward reaches a listener
                while not await directories[0].forward("b", b"{}"):
                    await asyncio.sleep(0.05)
            answers = [await viewer(relay, link.host_id) for relay in (a, b, a, b, a, b)]
            assert [answer for _, answer in answers] == [{"t": "spliced"}] * 3 + [
                {"t": "refused", "reason": "rate-limited: too many viewers for this ID"}] * 3
            for ws, _ in answers:
                await ws.close()
            await quiet(a, hosts=1)
            await quiet(b)
        assert [e["endpoint"] for k, e in a.events + b.events if k == "rate_limited"] == [
            "connect to ID"] * 3
    for directory in directories:
        if isinstance(directory, RedisDirectory):
            await directory.close()
    assert not other_tasks()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_two_relay_processes_with_redis(tmp_path: Path, redis_url: str) -> None:
    procs: list[asyncio.subprocess.Process] = []
    try:
        relays = []
        for name in ("a", "b"):
            port = _free_port()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rdesk", "relay", "--bind", "127.0.0.1", "--port", str(port),
                "--data-dir", str(tmp_path / "relay"), "--open", "--redis", redis_url,
                "--public-url", f"wss://127.0.0.1:{port}", "--id-burst", "12",
                "--id-rate", "0.0001",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
            procs.append(proc)
            assert proc.stdout is not None
            while b"fingerprint" not in (line := await asyncio.wait_for(proc.stdout.readline(),
                                                                        30)):
                assert line, f"relay {name} exited"
            fingerprint = line.decode().split()[-1]
            assert b"directory" in await asyncio.wait_for(proc.stdout.readline(), 30)
            relays.append(Relay.remote(port, fingerprint))
        a, b = relays
        assert a.fingerprint == b.fingerprint  # one data directory: one certificate
        link = make_link(a, host_identity(tmp_path / "host"), token=None)
        async with linked(link):
            tries = 0
            for _ in range(8):  # until b's subscription to its channel is live
                tries += 1
                ws, answer = await viewer(b, link.host_id)
                if answer == {"t": "spliced"}:
                    break
                assert answer == {"t": "refused", "reason": "unknown or offline ID"}
                await ws.wait_closed()
                await asyncio.sleep(0.25)
            assert answer == {"t": "spliced"}
            await ws.send(b"two processes")
            assert await ws.recv() == b"host:two processes"
            await ws.close()
            # The per-ID burst (12, no refill) holds for both processes together: what the
            # probe above took, then as many as are left, whichever instance they ask.
            answers = [await viewer(relay, link.host_id) for relay in 8 * [a, b]]
            spliced = [ws for ws, answer in answers if answer == {"t": "spliced"}]
            assert len(spliced) + tries == 12
            assert [answer for _, answer in answers[len(spliced):]] == [
                {"t": "refused", "reason": "rate-limited: too many viewers for this ID"}
            ] * (16 - len(spliced))
            for ws, _ in answers:
                await ws.close()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert not other_tasks()
