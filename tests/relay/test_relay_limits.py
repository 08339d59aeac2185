"""The relay's limits with real parts: floods against one ID, per-source rates, capacity."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.client import ClientConnection

from rdesk.relay.messages import Connect, Refused, encode
from tests.relay.harness import (
    Relay,
    host_identity,
    linked,
    make_link,
    open_ws,
    other_tasks,
    quiet,
    raw_host,
    running_relay,
    try_register,
    viewer,
)

#: A refill so slow it adds nothing during a test: only the burst counts.
NO_REFILL = 0.0001


async def test_a_viewer_flood_against_one_id_reaches_the_host_only_as_a_burst(
    tmp_path: Path,
) -> None:
    rendezvous: list[int] = []

    async def count_and_echo(ws: ClientConnection) -> None:
        rendezvous.append(1)
        async for message in ws:
            await ws.send(message)

    async with running_relay(tmp_path / "relay", id_rate=(NO_REFILL, 5),
                             connect_rate=(1000.0, 1000)) as relay:
        victim = make_link(relay, host_identity(tmp_path / "victim"),
                           on_rendezvous=count_and_echo)
        bystander = make_link(relay, host_identity(tmp_path / "bystander"))
        async with linked(victim), linked(bystander):
            answers = await asyncio.gather(*(viewer(relay, victim.host_id) for _ in range(40)))
            spliced = [ws for ws, answer in answers if answer == {"t": "spliced"}]
            refused = {answer["reason"] for _, answer in answers if answer["t"] == "refused"}
            assert 1 <= len(spliced) <= 5
            assert len(spliced) + sum(a["t"] == "refused" for _, a in answers) == 40
            assert refused <= {"rate-limited: too many viewers for this ID",
                               "too many viewers waiting for this ID"}
            assert len(rendezvous) == len(spliced)
            # another host on the same relay is not affected by the flood
            other, answer = await viewer(relay, bystander.host_id)
            assert answer == {"t": "spliced"}
            await other.send(b"ok")
            assert await other.recv() == b"host:ok"
            for ws in [other, *(ws for ws, _ in answers)]:
                await ws.close()
            await quiet(relay, hosts=2)
        await quiet(relay)
    assert not other_tasks()


async def test_viewers_waiting_for_a_silent_host_are_capped_and_time_out(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", max_waiting_per_id=3,
                             rendezvous_timeout=0.5) as relay:
        host = await raw_host(relay, host_identity(tmp_path / "host"))
        host_id = next(iter(relay.server.hosts.live.values())).host_id
        waiting = [await _send_connect(relay, host_id) for _ in range(3)]
        for _ in range(3):  # the host is told, and says nothing
            assert json.loads(await host.recv())["t"] == "rendezvous"
        ws, answer = await viewer(relay, host_id)
        assert answer == {"t": "refused", "reason": "too many viewers waiting for this ID"}
        await ws.wait_closed()
        for ws in waiting:
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert answer == {"t": "refused", "reason": "the host did not answer in time"}
            await ws.wait_closed()
        await host.close()
        await quiet(relay)
    assert not other_tasks()


async def _send_connect(relay: Relay, host_id: str) -> ClientConnection:
    """A viewer that asked for ``host_id`` and is now waiting for the host."""
    before = len(relay.server.waiting)
    ws = await open_ws(relay, "/connect")
    await ws.send(encode(Connect(host_id, 1)))
    while len(relay.server.waiting) == before:
        await asyncio.sleep(0.01)
    return ws


async def test_registrations_from_one_source_are_rate_limited(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", host_rate=(NO_REFILL, 3)) as relay:
        identity = host_identity(tmp_path / "host")
        for _ in range(3):
            await raw_host(relay, identity)  # each replaces the previous one
        ws = await open_ws(relay, "/host")
        answer = json.loads(await ws.recv())
        assert answer == {"t": "refused", "reason": "rate-limited: too many registration attempts"}
        await ws.wait_closed()
        assert relay.last("rate_limited") == {"source": "127.0.0.1", "endpoint": "registration"}
        for control in list(relay.server.hosts.live.values()):
            await control.ws.close()
        await quiet(relay)
    assert not other_tasks()


async def test_connects_from_one_source_are_rate_limited(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", connect_rate=(NO_REFILL, 2)) as relay:
        results = [await viewer(relay, "0000-0000-00000") for _ in range(3)]
        assert [answer["reason"] for _, answer in results] == [
            "unknown or offline ID", "unknown or offline ID",
            "rate-limited: too many connect attempts"]
        for ws, _ in results:
            await ws.wait_closed()
        await quiet(relay)
    assert not other_tasks()


async def test_max_sessions_bounds_the_viewers_in_all(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", max_sessions=1) as relay:
        link = make_link(relay, host_identity(tmp_path / "host"))
        async with linked(link):
            first, answer = await viewer(relay, link.host_id)
            assert answer == {"t": "spliced"}
            second, answer = await viewer(relay, link.host_id)
            assert answer == {"t": "refused", "reason": "relay is full"}
            await first.close()
            await second.wait_closed()
            await quiet(relay, hosts=1)
            third, answer = await viewer(relay, link.host_id)  # room again
            assert answer == {"t": "spliced"}
            await third.close()
            await quiet(relay, hosts=1)
        await quiet(relay)
    assert not other_tasks()


async def test_max_hosts_bounds_registrations_but_lets_a_host_replace_itself(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path / "relay", max_hosts=1) as relay:
        first = host_identity(tmp_path / "first")
        await raw_host(relay, first)
        ws, answer = await try_register(relay, host_identity(tmp_path / "second"))
        assert answer == Refused("relay is full")
        await ws.wait_closed()
        assert relay.last("register_refused")["reason"] == "relay is full"
        again = await raw_host(relay, first)  # the same host reconnecting still fits
        assert len(relay.server.hosts) == 1
        await again.close()
        await quiet(relay)
    assert not other_tasks()
