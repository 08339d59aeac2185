"""The relay tier's faults with a real ``redis-server``: an instance killed, Redis restarted.

- **an instance killed**: three ``rdesk relay`` processes on one Redis behind this test's TCP
  balancer (each new connection to the first live instance, in turn, as a load balancer does).
  The host (a real :class:`RelayLink`) dials the balancer. SIGKILL of the instance holding its
  control connection: the host is registered again on another instance after a bounded number
  of its connection attempts, and a viewer coming through the balancer reaches it;
- **Redis stopped and started again** (empty, as a restarted Redis without persistence is):
  two relay instances keep their hosts' control connections and keep splicing viewers to the
  hosts they hold; a viewer on the other instance, and a new registration, are refused with
  "the relay's directory is unavailable"; once Redis is back the holding instance writes its
  host's entry back at the next heartbeat (no re-registration of the host) and the other
  instance splices again through a forwarded rendezvous.

Events are counted (attempts, heartbeats, audit events); no wall-clock time is asserted.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from rdesk.relay.messages import Refused
from rdesk.relay.redisdir import RedisDirectory
from tests.relay.harness import (
    Relay,
    echo_through,
    host_identity,
    linked,
    make_link,
    running_relay,
    try_register,
    viewer,
)
from tests.relay.instances import (
    REDIS,
    Balancer,
    Redis,
    RelayProcess,
    forwarding_live,
    relay_process,
    stop_processes,
    until,
)

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server not installed")


async def test_redis_stopped_and_started_again(tmp_path: Path, redis: Redis) -> None:
    await redis.start()
    dirs = [RedisDirectory(redis.url) for _ in range(3)]
    probe = dirs[2]
    async with running_relay(tmp_path / "relay", directory=dirs[0], instance="a",
                             heartbeat=1.0) as a, \
            running_relay(tmp_path / "relay", directory=dirs[1], instance="b",
                          heartbeat=1.0) as b:
        for relay in (a, b):
            relay.server.config.public_url = relay.url
        said: list[str] = []
        link = make_link(a, host_identity(tmp_path / "host"), say=said.append)
        async with linked(link):
            await forwarding_live(probe, "b")
            await echo_through(a, link.host_id, b"before, same instance")
            await echo_through(b, link.host_id, b"before, across instances")

            redis.stop()
            await until(lambda: "heartbeat_unrecorded" in a.kinds(), "a heartbeat unrecorded")
            # The host held by a is still registered and served by a.
            assert link.registered.is_set() and "unregister" not in a.kinds()
            await echo_through(a, link.host_id, b"during, same instance")
            assert "directory_bypassed" in a.kinds()
            # Across instances, and new registrations: refused with the reason.
            ws, answer = await viewer(b, link.host_id)
            assert answer == {"t": "refused", "reason": "the relay's directory is unavailable"}
            await ws.wait_closed()
            assert ws.close_code == 1011
            ws2, refusal = await try_register(b, host_identity(tmp_path / "other"))
            assert refusal == Refused("the relay's directory is unavailable")
            await ws2.wait_closed()

            await redis.start()  # empty: the entry is gone
            await until(lambda: "register_restored" in a.kinds(), "the entry written back")
            await forwarding_live(probe, "b")
            await echo_through(b, link.host_id, b"after, across instances")
            await echo_through(a, link.host_id, b"after, same instance")
            # The host never noticed: one registration, one "registered as" line.
            assert a.kinds().count("register") == 1 and "unregister" not in a.kinds()
            assert sum("registered as" in line for line in said) == 1, said
            # And registering works again on b.
            ws3, accepted = await try_register(b, host_identity(tmp_path / "other"))
            assert not isinstance(accepted, Refused), accepted
            await ws3.close()
    for directory in dirs:
        await directory.close()


# --- an instance killed ------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_killing_the_instance_holding_a_host_moves_it(tmp_path: Path,
                                                            redis: Redis) -> None:
    await redis.start()
    procs: list[RelayProcess] = []
    probe = RedisDirectory(redis.url)
    try:
        for _ in range(3):
            procs.append(await relay_process(tmp_path, redis.url))
        balancer = Balancer([each.relay.port for each in procs])
        async with balancer.running():
            front = Relay.remote(balancer.port, procs[0].relay.fingerprint)
            said: list[str] = []
            link = make_link(front, host_identity(tmp_path / "host"), token=None,
                             say=said.append, backoff=(0.2, 1.0))
            async with linked(link):
                holder = balancer.log[0]  # the host's control connection went there
                assert len(balancer.log) == 1
                await reach(front, link.host_id, b"before the kill")

                procs[holder].proc.send_signal(signal.SIGKILL)
                await procs[holder].proc.wait()
                before = len(balancer.log)
                await until(lambda: not link.registered.is_set(), "the host saw the loss")
                await asyncio.wait_for(link.registered.wait(), 60)
                # Registered again on a live instance, on its first attempt after the loss
                # (the balancer skips the dead one), so within one backoff step.
                attempts = balancer.log[before:]
                assert len(attempts) == 1 and attempts[0] != holder, balancer.log
                assert sum("registered as" in line for line in said) == 2, said
                # A viewer reconnecting through the balancer reaches it, wherever it lands.
                tries = await reach(front, link.host_id, b"after the kill")
                assert tries <= 8
                entry = await probe.lookup(link.host_id, __import__("time").time())
                assert entry is not None
    finally:
        await probe.close()
        await stop_processes(procs)


async def reach(front: Relay, host_id: str, payload: bytes) -> int:
    """A viewer through the balancer until spliced (an instance whose subscription is not yet
    live answers 'unknown or offline ID'); returns the number of tries."""
    for tries in range(1, 9):
        ws, answer = await viewer(front, host_id)
        if answer == {"t": "spliced"}:
            await ws.send(payload)
            assert await ws.recv() == b"host:" + payload
            await ws.close()
            return tries
        assert answer == {"t": "refused", "reason": "unknown or offline ID"}, answer
        await ws.wait_closed()
        await asyncio.sleep(0.25)
    raise AssertionError("no instance spliced the viewer")
