"""Issue 20, input policy: dangerous key combinations blocked by role policy and audited, drop
counts that add up, and a key flood that does not stall the other viewers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from rdesk.client.connection import Connection, connect
from rdesk.host.security.keypolicy import DEFAULT_BLOCKED, combination, parse_blocked
from rdesk.host.settings import HostSettings
from rdesk.protocol.keysyms import KEYSYMS
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.e2e.pacedpaint import paint_and_count
from tests.xserver import Painter, Recorder, Xvfb, pressed_keys

HostFactory = Callable[..., RunningHost]

CTRL, ALT, SUPER = KEYSYMS["Control_L"], KEYSYMS["Alt_L"], KEYSYMS["Super_L"]
F1, BACKSPACE, DELETE, SYSRQ = 0xFFBE, KEYSYMS["BackSpace"], KEYSYMS["Delete"], 0xFF15


def test_combinations_are_named_and_the_policy_parsed() -> None:
    assert combination({CTRL, ALT}, F1 + 11) == "vt"
    assert combination({CTRL, ALT}, BACKSPACE) == "zap"
    assert combination({CTRL, KEYSYMS["Alt_R"]}, DELETE) == "cad"
    assert combination({ALT}, SYSRQ) == "sysrq"
    assert combination({SUPER}, ord("r")) == "super"
    assert combination({CTRL}, F1) is None and combination({SUPER}, CTRL) is None
    assert combination(set(), ord("a")) is None
    assert HostSettings().block_keys == DEFAULT_BLOCKED == frozenset({"vt", "zap"})
    assert parse_blocked("vt, cad") == {"vt", "cad"} and parse_blocked("none") == set()
    with pytest.raises(ValueError, match="unknown key combination 'reboot'"):
        parse_blocked("vt,reboot")


async def _chord(conn: Connection, *keysyms: int) -> None:
    """Press ``keysyms`` in order, then release them in reverse, as a person would."""
    for keysym in keysyms:
        await conn.key(keysym, True)
    for keysym in reversed(keysyms):
        await conn.key(keysym, False)


async def test_dangerous_combinations_are_blocked_by_policy_and_all_audited(
    xvfb: Xvfb, host_factory: HostFactory, injectors: Callable[[str], object]
) -> None:
    host = host_factory(xvfb.display, injector=injectors)
    events = host.record_events()
    with Recorder(xvfb.display) as rec:
        conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        try:
            await conn.wait_for(lambda: conn.holder == conn.viewer_id, 10)
            await _chord(conn, CTRL, ALT, F1)
            await _chord(conn, CTRL, ALT, BACKSPACE)
            await _chord(conn, CTRL, ALT, DELETE)
            await _chord(conn, SUPER, ord("r"))
            await _chord(conn, ord("z"))  # a sentinel: everything before it has arrived
            assert (await conn.sync(10)).ok
            rec.wait_for(lambda e: e["type"] == "key_press" and e.get("text") == "z")
        finally:
            await conn.close()
        pressed = [e["keysym"] for e in rec.events() if e["type"] == "key_press"]
    assert F1 not in pressed and BACKSPACE not in pressed  # vt and zap: blocked by default
    assert DELETE in pressed and ord("r") in pressed  # cad and super: let through...
    combos = [(f["combination"], f["action"]) for kind, f in events if kind == "key_combo"]
    assert combos == [("vt", "blocked"), ("zap", "blocked"), ("cad", "allowed"),
                      ("super", "allowed")]  # ...and every one of them audited
    assert pressed_keys(xvfb.display) == []


async def test_block_keys_none_lets_a_vt_switch_through(
    xvfb: Xvfb, host_factory: HostFactory, injectors: Callable[[str], object]
) -> None:
    host = host_factory(xvfb.display, injector=injectors, block_keys=frozenset({"cad"}))
    events = host.record_events()
    with Recorder(xvfb.display) as rec:
        conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        try:
            await conn.wait_for(lambda: conn.holder == conn.viewer_id, 10)
            await _chord(conn, CTRL, ALT, DELETE)
            await _chord(conn, ALT, F1)  # no combination: Ctrl is not held
            await _chord(conn, ord("z"))
            assert (await conn.sync(10)).ok
            rec.wait_for(lambda e: e["type"] == "key_press" and e.get("text") == "z")
        finally:
            await conn.close()
        pressed = [e["keysym"] for e in rec.events() if e["type"] == "key_press"]
    assert DELETE not in pressed and F1 in pressed
    assert [f["action"] for kind, f in events if kind == "key_combo"] == ["blocked"]


async def test_dropped_input_is_counted_exactly(
    xvfb: Xvfb, host_factory: HostFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from rdesk.host.input.inject import PynputInjector

    injector: list[PynputInjector] = []

    def make(display: str) -> PynputInjector:
        injector.append(PynputInjector(display, rate=1.0, burst=10.0))
        return injector[0]

    host = host_factory(xvfb.display, injector=make)
    events = host.record_events()
    caplog.set_level(logging.WARNING, logger="rdesk.host.input.inject")
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
    try:
        await conn.wait_for(lambda: conn.holder == conn.viewer_id, 10)
        for _ in range(200):  # 200 presses against a bucket of 10: at least 185 dropped
            await conn.key(ord("q"), True)
            await conn.key(ord("q"), False)
        assert (await conn.sync(30)).ok
    finally:
        await conn.close()
    await asyncio.sleep(0)
    for _ in range(200):  # the viewer's close releases and reports what it still counted
        if host.server.viewers == {}:
            break
        await asyncio.sleep(0.05)
    state_dropped = injector[0].dropped_total
    reported = sum(int(r.getMessage().split(": ")[1].split()[0]) for r in caplog.records
                   if "dropped" in r.getMessage())
    assert 185 <= state_dropped <= 200
    assert reported == state_dropped  # every drop is in some line, none counted twice
    # ...and in the audit log, with the viewer's source (issue 20's "input-rate drops").
    audited = [f for kind, f in events if kind == "input_dropped" and f["reason"] == "rate limit"]
    assert sum(int(str(f["count"])) for f in audited) == state_dropped
    assert {f["source"] for f in audited} == {"127.0.0.1"}
    assert {f["viewer"] for f in audited} == {conn.viewer_id}




async def _flood(conn: Connection, stop: asyncio.Event) -> int:
    """Key events as fast as the socket takes them, 10,000 per round, until ``stop``."""
    sent = 0
    while not stop.is_set():
        for _ in range(5000):
            await conn.key(KEYSYMS["Shift_L"], True)
            await conn.key(KEYSYMS["Shift_L"], False)
        sent += 10_000
        assert (await conn.sync(60)).ok
    return sent


async def test_a_key_flood_does_not_stall_the_other_viewer(
    xvfb: Xvfb, host_factory: HostFactory, injectors: Callable[[str], object]
) -> None:
    host = host_factory(xvfb.display, injector=injectors)
    with Painter(xvfb.display, dump=False) as painter:
        flooder = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        watcher = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        try:
            await flooder.wait_for(lambda: flooder.holder == flooder.viewer_id, 10)
            await watcher.wait_exact(30)
            quiet = await paint_and_count(painter, watcher)
            stop = asyncio.Event()
            flood = asyncio.create_task(_flood(flooder, stop))
            try:
                attacked = await paint_and_count(painter, watcher)
            finally:
                stop.set()
                sent = await flood
        finally:
            await flooder.close()
            await watcher.close()
    assert sent >= 10_000
    assert attacked >= quiet // 2, (quiet, attacked, sent)
    assert pressed_keys(xvfb.display) == []
