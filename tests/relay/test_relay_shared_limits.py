"""The relay's limits across instances sharing a directory (in memory, or a real Redis).

Per-source buckets (``/connect``, ``/data``, ``/host``) and the cap on viewers waiting for one
ID hold for all instances together: a source that spent its burst on one instance is refused
on the other, and the waiting places of one ID are counted wherever the viewers wait. A
directory that cannot answer leaves each instance its own limits, said once in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rdesk.protocol.hostid import host_id
from rdesk.relay import proof
from rdesk.relay.messages import Connect, encode
from rdesk.relay.redisdir import RedisDirectory
from tests.relay.harness import (
    Relay,
    host_identity,
    open_ws,
    other_tasks,
    quiet,
    raw_host,
    running_relay,
    viewer,
)
from tests.relay.instances import (
    Redis,
    RelayProcess,
    forwarding_live,
    instance_pair,
    relay_process,
    stop_processes,
    until,
)

#: A refill so slow it adds nothing during a test: only the burst counts.
NO_REFILL = 0.0001
KINDS = pytest.mark.parametrize("kind", ["memory", "redis"])


async def _answer(relay: Relay, path: str, message: str | None = None, **kwargs: Any) -> str:
    """Open ``path``, send ``message`` if any, and return the reason of the relay's refusal
    (``kwargs`` for :func:`open_ws`)."""
    ws = await open_ws(relay, path, **kwargs)
    if message is not None:
        with contextlib.suppress(ConnectionClosed):  # a rate-limited one is refused at once
            await ws.send(message)
    answer = json.loads(await ws.recv())
    await ws.wait_closed()
    assert answer["t"] == "refused", answer
    return str(answer["reason"])


@KINDS
async def test_a_source_that_spent_its_burst_on_one_instance_is_refused_on_the_other(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str,
) -> None:
    limits = {"connect_rate": (NO_REFILL, 3), "host_rate": (NO_REFILL, 2)}
    async with instance_pair(tmp_path, request, kind, **limits) as (a, b, _):
        wrong = encode(Connect("0000-0000-00000", 1))  # /data refuses it, past its bucket
        data = [await _answer(relay, "/data", wrong) for relay in (a, b, a, b)]
        assert data == ["unexpected connect while awaiting data"] * 3 + [
            "rate-limited: too many data attempts"]
        # /connect's bucket is another one: the same source still has its burst there
        connects = [await _answer(relay, "/connect", wrong) for relay in (b, a, b, a)]
        assert connects == ["unknown or offline ID"] * 3 + [
            "rate-limited: too many connect attempts"]
        identity = host_identity(tmp_path / "host")
        for relay in (a, b):  # each registration replaces the one before, across instances
            (await raw_host(relay, identity)).transport.abort()
        assert await _answer(a, "/host") == "rate-limited: too many registration attempts"
        events = [(e["endpoint"], e["source"]) for k, e in a.events + b.events
                  if k == "rate_limited"]
        assert sorted(events) == [("connect", "127.0.0.1"), ("data", "127.0.0.1"),
                                  ("registration", "127.0.0.1")]
        await quiet(a)
        await quiet(b)
    assert not other_tasks()


async def _waiting(relay: Relay, host: ClientConnection, host_id: str,
                   **kwargs: Any) -> ClientConnection:
    """A viewer for ``host_id`` on ``relay``, admitted: the (silent) host was asked."""
    ws = await open_ws(relay, "/connect", **kwargs)
    await ws.send(encode(Connect(host_id, 1)))
    assert json.loads(await host.recv())["t"] == "rendezvous"
    return ws


@KINDS
async def test_the_cap_on_viewers_waiting_for_an_id_holds_across_instances(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str,
) -> None:
    config = {"max_waiting_per_id": 3, "rendezvous_timeout": 60.0}
    async with instance_pair(tmp_path, request, kind, **config) as (a, b, _):
        host = await raw_host(a, host_identity(tmp_path / "host"))
        host_id = next(iter(a.server.hosts.live.values())).host_id
        waiting = [await _waiting(relay, host, host_id) for relay in (a, b, a)]
        for relay in (b, a):
            ws, answer = await viewer(relay, host_id)
            assert answer == {"t": "refused", "reason": "too many viewers waiting for this ID"}
            await ws.wait_closed()
        await waiting.pop(1).close()  # the one waiting on b leaves: its place is free
        await quiet_waiting(b)
        waiting.append(await _waiting(b, host, host_id))
        ws, answer = await viewer(a, host_id)
        assert answer == {"t": "refused", "reason": "too many viewers waiting for this ID"}
        for each in waiting:
            await each.close()
        await quiet_waiting(a)
        await quiet_waiting(b)
        waiting = [await _waiting(relay, host, host_id) for relay in (b, a, b)]  # all free
        for each in waiting:
            await each.close()
        await host.close()
        await quiet(a)
        await quiet(b)
    assert not other_tasks()


async def quiet_waiting(relay: Relay) -> None:
    """Wait until no viewer waits on ``relay`` (their places were given back)."""
    for _ in range(400):
        if not relay.server.waiting and not relay.server.admission.sessions:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("viewers still waiting")


async def test_a_directory_that_cannot_answer_leaves_each_instance_its_own_limits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    down = RedisDirectory(f"unix://{tmp_path}/no-redis.sock")
    caplog.set_level(logging.WARNING, "rdesk.relay.admission")
    async with running_relay(tmp_path / "relay", directory=down,
                             connect_rate=(NO_REFILL, 2)) as relay:
        wrong = encode(Connect("0000-0000-00000", 1))
        answers = [await _answer(relay, "/connect", wrong) for _ in range(3)]
        assert answers == ["the relay's directory is unavailable"] * 2 + [
            "rate-limited: too many connect attempts"]  # this instance's own bucket
        assert relay.kinds().count("limits_local") == 1
        said = [r.getMessage() for r in caplog.records if r.name == "rdesk.relay.admission"]
        assert len(said) == 1 and "using this instance's own limits" in said[0], said
        await quiet(relay)
    await down.close()
    assert not other_tasks()


async def _admitted(relay: Relay, host: ClientConnection, host_id: str,
                    source: str) -> ClientConnection | None:
    """A viewer from ``source``: the websocket if it was admitted (the silent host was asked
    first), ``None`` if it was refused for the waiting cap."""
    ws = await open_ws(relay, "/connect", local_addr=(source, 0))
    await ws.send(encode(Connect(host_id, 1)))
    refused, asked = (asyncio.ensure_future(c.recv()) for c in (ws, host))
    done, _ = await asyncio.wait({refused, asked}, timeout=30,
                                 return_when=asyncio.FIRST_COMPLETED)
    for task in (refused, asked):
        task.cancel()
    if asked in done:
        assert json.loads(asked.result())["t"] == "rendezvous"
        return ws
    assert refused in done, "neither refused nor admitted"
    assert json.loads(refused.result()) == {"t": "refused",
                                            "reason": "too many viewers waiting for this ID"}
    await ws.wait_closed()
    return None


@pytest.mark.timeout(240)
async def test_two_relay_processes_share_the_limits_through_redis_faults_and_a_kill(
    tmp_path: Path, redis: Redis,
) -> None:
    await redis.start()
    flags = ("--source-burst", "4", "--source-rate", str(NO_REFILL), "--id-burst", "1000",
             "--rendezvous-timeout", "10")
    procs: list[RelayProcess] = []
    probe = RedisDirectory(redis.url)
    # each step its own source address (all of 127/8 is this machine's)
    sources = (f"127.0.{n // 250}.{n % 250 + 2}" for n in range(60_000))
    wrong = encode(Connect("0000-0000-00000", 1))

    async def unknown(relay: Relay, source: str) -> str:
        return await _answer(relay, "/connect", wrong, local_addr=(source, 0))

    try:
        for _ in range(2):
            procs.append(await relay_process(tmp_path, redis.url, *flags))
        a, b = (each.relay for each in procs)
        limited = "rate-limited: too many connect attempts"

        # One source, both instances: one burst of 4 in all.
        src = next(sources)
        assert [await unknown(relay, src) for relay in (a, b, a, b, a, b)] == [
            "unknown or offline ID"] * 4 + [limited] * 2

        # Redis stopped: each instance its own burst of 4 for a source, said once each.
        redis.stop()
        src = next(sources)
        answers = [await unknown(relay, src) for relay in [a] * 5 + [b] * 5]
        assert answers == (["the relay's directory is unavailable"] * 4 + [limited]) * 2
        local = "using this instance's own limits until it answers again"
        await until(lambda: all(each.logged(local) for each in procs), "said once each")

        # Redis back: each instance says so once, and the burst is shared again.
        await redis.start()
        shared = "limits are shared again"
        for _ in range(50):
            if all(each.logged(shared) for each in procs):
                break
            for relay in (a, b):
                await unknown(relay, next(sources))
            await asyncio.sleep(0.2)
        src = next(sources)
        assert [await unknown(relay, src) for relay in (b, a, b, a, b)] == [
            "unknown or offline ID"] * 4 + [limited]
        assert [(each.logged(local), each.logged(shared)) for each in procs] == [(1, 1)] * 2

        # Four viewers waiting on b for a silent host on a fill the cap of 4 for a too.
        identity = host_identity(tmp_path / "host")
        host = await raw_host(a, identity)
        hid = host_id(proof.spki_of_certificate(identity.cert_der))
        await forwarding_live(probe, procs[1].instance)
        src = next(sources)
        waiting = [await _waiting(b, host, hid, local_addr=(src, 0)) for _ in range(4)]
        assert await _admitted(a, host, hid, next(sources)) is None

        # b killed while they wait: their places stay in Redis, then lapse by themselves.
        procs[1].proc.send_signal(signal.SIGKILL)
        await procs[1].proc.wait()
        for ws in waiting:  # they were still waiting: no refusal came before the loss
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        key = f"rdesk-relay:places:waiting:{hid}"
        assert await probe.redis.call("ZCARD", key) == 4
        assert await _admitted(a, host, hid, next(sources)) is None
        for _ in range(120):
            admitted = await _admitted(a, host, hid, next(sources))
            if admitted is not None:
                break
            await asyncio.sleep(0.25)
        assert admitted is not None, "the killed instance's places never lapsed"
        await admitted.close()
        await host.close()
        assert (await stop_processes(procs))[0] == 0
    finally:
        await probe.close()
        await stop_processes(procs)
    assert not other_tasks()
