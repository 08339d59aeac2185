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
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

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
from tests.relay.instances import instance_pair

#: A refill so slow it adds nothing during a test: only the burst counts.
NO_REFILL = 0.0001
KINDS = pytest.mark.parametrize("kind", ["memory", "redis"])


async def _answer(relay: Relay, path: str, message: str | None = None) -> str:
    """Open ``path``, send ``message`` if any, and return the reason of the relay's refusal."""
    ws = await open_ws(relay, path)
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


async def _waiting(relay: Relay, host: ClientConnection, host_id: str) -> ClientConnection:
    """A viewer for ``host_id`` on ``relay``, admitted: the (silent) host was asked."""
    ws = await open_ws(relay, "/connect")
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
