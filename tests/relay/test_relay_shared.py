"""Two relay instances sharing a directory (a real Redis, or one in-process directory).

The shared directory binds an ID to its key across instances and lets the newest registration
of a host win everywhere. A viewer reaching an instance other than its host's is spliced when
the instances have their own addresses (the rendezvous is forwarded, and the host opens its
data connection at the viewer's instance), and told so in one line when they do not.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from rdesk.relay.messages import Refused
from rdesk.relay.redisdir import RedisDirectory
from tests.relay.harness import (
    echo_through,
    host_identity,
    linked,
    make_link,
    other_tasks,
    quiet,
    running_relay,
    try_register,
    viewer,
)
from tests.relay.instances import RelayProcess, instance_pair, relay_process, stop_processes


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
                await echo_through(b, on_b.host_id, b"via b")
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
    async with instance_pair(tmp_path, request, kind) as (a, b, _):
        link = make_link(a, host_identity(tmp_path / "host"))
        async with linked(link):
            await echo_through(b, link.host_id, b"across instances")
            await quiet(b)
            await quiet(a, hosts=1)
        assert b.last("rendezvous") == {"source": "127.0.0.1", "id": link.host_id,
                                        "session": b.last("splice_end")["session"], "via": "a",
                                        "lane": "ws"}
        assert "splice_end" not in a.kinds()  # the splice ran on the viewer's instance
    assert not other_tasks()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_the_per_id_limit_is_shared_by_the_instances(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str,
) -> None:
    limits = {"id_rate": (0.0001, 3), "connect_rate": (1000.0, 1000)}  # no refill: the burst
    async with instance_pair(tmp_path, request, kind, **limits) as (a, b, _):
        link = make_link(a, host_identity(tmp_path / "host"))
        async with linked(link):
            answers = [await viewer(relay, link.host_id) for relay in (a, b, a, b, a, b)]
            assert [answer for _, answer in answers] == [{"t": "spliced"}] * 3 + [
                {"t": "refused", "reason": "rate-limited: too many viewers for this ID"}] * 3
            for ws, _ in answers:
                await ws.close()
            await quiet(a, hosts=1)
            await quiet(b)
        assert [e["endpoint"] for k, e in a.events + b.events if k == "rate_limited"] == [
            "connect to ID"] * 3
    assert not other_tasks()


async def test_two_relay_processes_with_redis(tmp_path: Path, redis_url: str) -> None:
    procs: list[RelayProcess] = []
    try:
        for _ in range(2):
            procs.append(await relay_process(tmp_path, redis_url, "--id-burst", "12",
                                             "--id-rate", "0.0001"))
        a, b = (each.relay for each in procs)
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
        assert await stop_processes(procs) == [0, 0]
    finally:
        await stop_processes(procs)
    assert not other_tasks()
