"""The host's RelayLink against a real relay: pinning, TOFU, heartbeats, expiry, move."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from rdesk.host.relaylink import RelayLink, RelayLinkError, backoff_delay
from rdesk.protocol.errors import CloseCode
from tests.relay.harness import (
    host_identity,
    linked,
    make_link,
    other_tasks,
    quiet,
    raw_host,
    running_relay,
    viewer,
)


@given(st.integers(0, 100), st.floats(0, 1, exclude_max=True))
def test_backoff_is_capped_jittered_and_at_least_half_its_ceiling(attempt: int,
                                                                  rand: float) -> None:
    delay = backoff_delay(attempt, rand, base=1.0, cap=60.0)
    ceiling = min(60.0, 2.0**attempt)
    assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(attempt + 1, rand) >= delay


async def test_a_relay_with_another_fingerprint_gets_nothing(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        link = make_link(relay, host_identity(tmp_path / "host"), pin="SHA256:someone-else",
                         backoff=(30.0, 30.0))
        async with linked(link, registered=False):
            while link.last_error is None:
                await asyncio.sleep(0.02)
        assert link.last_error == (
            f"the relay's fingerprint is {relay.fingerprint}, not the pinned SHA256:someone-else")
        # the token was never sent: the relay saw no registration attempt at all
        assert not [kind for kind in relay.kinds() if kind.startswith("register")]
        await quiet(relay)
    assert not other_tasks()


async def test_without_a_pin_the_first_fingerprint_is_shown_and_kept(tmp_path: Path) -> None:
    lines: list[str] = []
    async with running_relay(tmp_path / "relay") as relay:
        link = make_link(relay, host_identity(tmp_path / "host"), pin=None, say=lines.append)
        async with linked(link):
            assert link.pin == relay.fingerprint
        assert lines[0] == (f"rdesk: relay {relay.url} presents {relay.fingerprint}; "
                            "trusting it (pin it to be sure)")
        assert lines[1] == f"rdesk: registered as {link.host_id} on relay {relay.url}"
        await quiet(relay)
    assert not other_tasks()


async def test_heartbeats_keep_a_host_registered(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", heartbeat=1.0, expiry=3.0) as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "host"))) as link:
            (control,) = relay.server.hosts.live.values()
            seen = [control.machine.last_seen]
            while len(seen) < 3:  # the relay has renewed the registration twice
                await asyncio.sleep(0.1)
                if control.machine.last_seen != seen[-1]:
                    seen.append(control.machine.last_seen)
            assert link.registered.is_set()
            entry = await relay.server.directory.lookup(link.host_id, relay.server.wall_clock())
            assert entry is not None
        await quiet(relay)
    assert not other_tasks()


async def test_a_silent_host_expires(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", heartbeat=1.0, expiry=1.5) as relay:
        host = await raw_host(relay, host_identity(tmp_path / "host"))
        (control,) = relay.server.hosts.live.values()
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(host.recv(), 10)
        assert (host.close_code, host.close_reason) == (CloseCode.UNRESPONSIVE,
                                                        "no heartbeat for 1.5 s")
        ws, answer = await viewer(relay, control.host_id)
        assert answer == {"t": "refused", "reason": "unknown or offline ID"}
        await ws.wait_closed()
        assert relay.last("unregister")["reason"] == "no heartbeat for 1.5 s"
        await quiet(relay)
    assert not other_tasks()


async def test_move_sends_the_host_to_the_named_relay(tmp_path: Path) -> None:
    # Two instances with the same certificate, as behind a load balancer.
    async with running_relay(tmp_path / "relay") as second, \
            running_relay(tmp_path / "relay", move_url=second.url) as first:
        assert first.fingerprint == second.fingerprint
        link = make_link(first, host_identity(tmp_path / "host"))
        async with linked(link):
            await first.server.drain(grace=1)
            while not second.server.hosts.live:
                await asyncio.sleep(0.02)
            assert link.moves == 1 and link.url == second.url
            await asyncio.wait_for(link.registered.wait(), 10)
            ws, answer = await viewer(second, link.host_id)
            assert answer == {"t": "spliced"}
            await ws.send(b"moved")
            assert await ws.recv() == b"host:moved"
            await ws.close()
        await quiet(second)
    assert not other_tasks()


def test_a_link_needs_a_wss_url_and_its_own_certificate(tmp_path: Path) -> None:
    mine, theirs = host_identity(tmp_path / "a"), host_identity(tmp_path / "b")

    async def nothing(ws: object) -> None:
        return None

    with pytest.raises(RelayLinkError, match="a relay address is wss://HOST"):
        RelayLink("ws://relay", mine.key, mine.cert_der, None, on_rendezvous=nothing)
    with pytest.raises(ValueError, match="not for this private key"):
        RelayLink("wss://relay", mine.key, theirs.cert_der, None, on_rendezvous=nothing)
