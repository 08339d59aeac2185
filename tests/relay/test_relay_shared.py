"""Two relay instances sharing a real Redis directory (what scale-out has so far).

The shared directory binds an ID to its key across instances and lets the newest registration
of a host win everywhere; rendezvous across instances is not implemented, and a viewer who
reaches the wrong instance is told so in one line.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from rdesk.relay.messages import Refused
from rdesk.relay.redisdir import RedisDirectory
from tests.relay.harness import (
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
