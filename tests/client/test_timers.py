"""The session timer loop on a fake clock: keepalive pings on time, the pong timeout, the
handshake deadline, and pokes for deadlines that moved earlier.

The session is a real viewer :class:`Session`, taken through a real handshake with frames a
host :class:`Session` produced. The clock is fake: the loop's sleep advances it at once, so
every time asserted is the session's own arithmetic, never the wall clock.
"""

from __future__ import annotations

import asyncio

import pytest

from rdesk.client.timers import SessionTimers
from rdesk.protocol.codec import decode, encode
from rdesk.protocol.errors import CloseCode, RemoteProtocolError
from rdesk.protocol.messages import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Auth,
    Hello,
    Ping,
    Pong,
    Welcome,
)
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role, State

INTERVAL, TIMEOUT, HANDSHAKE = 15.0, 20.0, 10.0
NONCE = "A" * 24


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Peer:
    """The far end: records the frames the loop sends (with the time) and may answer pings."""

    def __init__(self, clock: FakeClock, session: Session, *, answers: bool) -> None:
        self.clock = clock
        self.session = session
        self.answers = answers
        self.pings: list[float] = []

    async def send(self, frame: str | bytes) -> None:
        message = decode(frame)
        assert isinstance(message, Ping)
        self.pings.append(self.clock.now)
        if self.answers:
            self.clock.now += 0.25  # the round trip
            self.session.receive(_pong(message.id), self.clock.now)


def _pong(ping_id: int) -> str:
    frame = encode(Pong(ping_id))
    assert isinstance(frame, str)
    return frame


def _active_viewer(clock: FakeClock, ping_interval: float | None = INTERVAL) -> Session:
    """A viewer session that completed its handshake at ``clock.now``."""
    viewer = Session(
        Role.VIEWER, clock.now, handshake_timeout=HANDSHAKE, ping_interval=ping_interval,
        ping_timeout=TIMEOUT,
    )
    host = Session(Role.HOST, clock.now)
    hello = host.send(Hello(PROTOCOL_NAME, PROTOCOL_VERSION, NONCE, "password", "t"), 0)
    viewer.receive(hello, clock.now)
    host.receive(viewer.send(Auth(PROTOCOL_VERSION, NONCE, "password", "pw", "v"), 0), 0)
    viewer.receive(host.send(Welcome("control", 1, 64, 48, "h"), 0), clock.now)
    assert viewer.state is State.ACTIVE
    return viewer


async def _run_until(timers: SessionTimers, done: asyncio.Future[None] | None = None) -> None:
    task = asyncio.ensure_future(timers.run())
    try:
        if done is None:
            await asyncio.wait_for(task, 10)
        else:
            await asyncio.wait_for(asyncio.shield(done), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_keepalive_pings_every_interval_while_answered() -> None:
    clock = FakeClock()
    session = _active_viewer(clock)
    peer = Peer(clock, session, answers=True)
    enough: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send(frame: str | bytes) -> None:
        await peer.send(frame)
        if len(peer.pings) == 4 and not enough.done():
            enough.set_result(None)

    await _run_until(SessionTimers(session, send, clock=clock, sleep=clock.sleep), enough)
    # Each ping is due INTERVAL after the previous one was sent (not after its pong).
    assert peer.pings == [15.0, 30.0, 45.0, 60.0]
    assert session.rtt == pytest.approx(0.25)
    assert session.min_rtt == pytest.approx(0.25)
    assert session.state is State.ACTIVE


async def test_an_unanswered_ping_ends_the_loop_unresponsive() -> None:
    clock = FakeClock()
    session = _active_viewer(clock)
    peer = Peer(clock, session, answers=False)
    with pytest.raises(RemoteProtocolError) as caught:
        await _run_until(SessionTimers(session, peer.send, clock=clock, sleep=clock.sleep))
    assert caught.value.code == CloseCode.UNRESPONSIVE
    assert peer.pings == [INTERVAL]  # one ping outstanding at a time: no second one
    assert clock.now == INTERVAL + TIMEOUT


async def test_the_handshake_deadline() -> None:
    clock = FakeClock()
    session = Session(Role.VIEWER, clock.now, handshake_timeout=HANDSHAKE)
    sent: list[str | bytes] = []

    async def send(frame: str | bytes) -> None:
        sent.append(frame)

    with pytest.raises(RemoteProtocolError) as caught:
        await _run_until(SessionTimers(session, send, clock=clock, sleep=clock.sleep))
    assert caught.value.code == CloseCode.HANDSHAKE_TIMEOUT
    assert clock.now == HANDSHAKE
    assert sent == []


async def test_an_on_demand_ping_needs_a_poke_to_be_timed() -> None:
    clock = FakeClock()
    session = _active_viewer(clock, ping_interval=None)  # no keepalive: no deadline at all
    sent: list[str | bytes] = []

    async def send(frame: str | bytes) -> None:
        sent.append(frame)

    timers = SessionTimers(session, send, clock=clock, sleep=clock.sleep)
    task = asyncio.ensure_future(timers.run())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done() and clock.sleeps == []  # waiting for a poke, not spinning
    clock.now = 5.0
    assert session.ping(clock.now) is not None  # sent by its owner, not by the loop
    timers.poke()
    with pytest.raises(RemoteProtocolError) as caught:
        await asyncio.wait_for(task, 10)
    assert caught.value.code == CloseCode.UNRESPONSIVE
    assert clock.now == 5.0 + TIMEOUT
    assert sent == []


async def test_an_answered_on_demand_ping_postpones_the_keepalive() -> None:
    clock = FakeClock()
    session = _active_viewer(clock)
    peer = Peer(clock, session, answers=True)
    # Let the loop start sleeping towards the first keepalive (t=15), then ping at t=10.
    real_sleep = clock.sleep
    started = asyncio.Event()
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        started.set()
        await gate.wait()
        await real_sleep(seconds)

    timers = SessionTimers(session, peer.send, clock=clock, sleep=gated_sleep)
    task = asyncio.ensure_future(timers.run())
    await asyncio.wait_for(started.wait(), 10)
    clock.now = 10.0
    frame = session.ping(clock.now)
    assert frame is not None
    ping = decode(frame)
    assert isinstance(ping, Ping)
    session.receive(_pong(ping.id), 10.5)
    assert session.rtt == pytest.approx(0.5)
    timers.poke()
    gate.set()
    while len(peer.pings) < 1:
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert peer.pings == [25.0]  # INTERVAL after the on-demand ping, not at 15
    assert session.rtt == pytest.approx(0.25)  # the keepalive's round trip
    assert session.min_rtt == pytest.approx(0.25)


async def test_a_closed_session_leaves_the_loop_waiting() -> None:
    clock = FakeClock()
    session = _active_viewer(clock)
    assert session.close_frame(CloseCode.NORMAL, "bye") is not None
    timers = SessionTimers(session, Peer(clock, session, answers=True).send, clock=clock,
                           sleep=clock.sleep)
    task = asyncio.ensure_future(timers.run())
    for _ in range(5):
        await asyncio.sleep(0)
    timers.poke()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    assert clock.now == 0.0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
