"""The Session state machine: handshake, state rules, per-connection checks and timers."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import rdesk.protocol.messages as m
import rdesk.protocol.presence as presence
from rdesk.protocol import clipboard as clip
from rdesk.protocol import codec
from rdesk.protocol import cursor as cur
from rdesk.protocol import monitors as mon
from rdesk.protocol import resize as rsz
from rdesk.protocol import session as session_module
from rdesk.protocol import transfer as xfer
from rdesk.protocol import video as vid
from rdesk.protocol.codec import copy_payload, decode, encode
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from rdesk.protocol.flow import Sample
from rdesk.protocol.inputs import InputAck, Key, Pointer, Sync, Wheel
from rdesk.protocol.messages import (
    CONTROL_TYPES,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Close,
    Hello,
    Ping,
    Pong,
    Refresh,
    Screen,
    Welcome,
)
from rdesk.protocol.session import HANDSHAKE_TIMEOUT, PING_INTERVAL, PING_TIMEOUT, Session
from rdesk.protocol.states import TRANSITIONS, Direction, Role, State
from rdesk.protocol.updates import Rect, Update

WIDTH, HEIGHT = 640, 480


def new_nonce() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def hello(nonce: str | None = None, version: int = PROTOCOL_VERSION) -> Hello:
    return Hello(PROTOCOL_NAME, version, nonce or new_nonce(), "password", "test-host")


def auth(nonce: str, version: int = PROTOCOL_VERSION, secret: str = "s3cret") -> Auth:
    return Auth(version, nonce, "password", secret, "alice")


def welcome(width: int = WIDTH, height: int = HEIGHT) -> Welcome:
    return Welcome("control", 1, width, height, "test-host")


def jpeg(x: int, y: int, w: int, h: int) -> Rect:
    return Rect(x, y, w, h, Encoding.JPEG, b"\xff\xd8")


class Pair:
    """A host and a viewer session with a wire between them."""

    def __init__(self, now: float = 0.0, **kwargs: object) -> None:
        self.host = Session(Role.HOST, now, **kwargs)  # type: ignore[arg-type]
        self.viewer = Session(Role.VIEWER, now, **kwargs)  # type: ignore[arg-type]

    def h2v(self, message: object, now: float = 0.0) -> object:
        return self.viewer.receive(self.host.send(message, now), now)  # type: ignore[arg-type]

    def v2h(self, message: object, now: float = 0.0) -> object:
        return self.host.receive(self.viewer.send(message, now), now)  # type: ignore[arg-type]

    def handshake(self, now: float = 0.0, until: State = State.ACTIVE) -> Pair:
        if until is State.START:
            return self
        self.h2v(hello(), now)
        if until is State.AWAIT_AUTH:
            return self
        assert self.viewer.nonce is not None
        self.v2h(auth(self.viewer.nonce), now)
        if until is State.AUTHENTICATING:
            return self
        self.h2v(welcome(), now)
        return self


# --- the handshake -----------------------------------------------------------------------------


def test_full_handshake() -> None:
    pair = Pair()
    assert pair.host.state is pair.viewer.state is State.START
    nonce = new_nonce()
    frame = pair.host.send(hello(nonce), 0.0)
    assert isinstance(frame, str)
    assert pair.host.state is State.AWAIT_AUTH
    assert pair.viewer.receive(frame, 0.0) == hello(nonce)
    assert pair.viewer.state is State.AWAIT_AUTH
    assert pair.viewer.nonce == pair.host.nonce == nonce

    got = pair.v2h(auth(nonce), 0.1)
    assert got == auth(nonce)
    assert pair.host.state is pair.viewer.state is State.AUTHENTICATING

    assert pair.h2v(Welcome("view", 42, 1920, 1080, "box"), 0.2) == Welcome(
        "view", 42, 1920, 1080, "box"
    )
    for s in (pair.host, pair.viewer):
        assert s.state is State.ACTIVE
        assert (s.width, s.height) == (1920, 1080)
        assert s.access == "view"

    # Updates, acks and input flow.
    update = Update(0, 123, (jpeg(0, 0, 1920, 1080),))
    assert pair.h2v(update, 0.3) == update
    assert pair.host.flow.count == 1
    pair.v2h(Ack(0), 0.4)
    assert pair.host.flow.count == 0
    assert pair.host.flow.srtt == pytest.approx(0.1)
    for message in (Pointer(1, 2, 1), Wheel(3, 4, 0, -1), Key(0x61, True), Sync(5), Refresh(),
                    Ping(9), Pong(9)):
        assert pair.v2h(message, 0.5) == message
    for message in (InputAck(5, True, ""), Screen(800, 600), Ping(1), Pong(1)):
        assert pair.h2v(message, 0.5) == message
    assert (pair.viewer.width, pair.viewer.height) == (800, 600)

    # And closes.
    pair.h2v(Close(int(CloseCode.SHUTDOWN), "bye"), 1.0)
    assert pair.host.state is pair.viewer.state is State.CLOSED
    assert pair.viewer.close_reason == (CloseCode.SHUTDOWN, "bye")
    assert pair.host.close_reason == (CloseCode.SHUTDOWN, "bye")


@pytest.mark.parametrize("state", [State.START, State.AWAIT_AUTH, State.AUTHENTICATING,
                                   State.ACTIVE])
@pytest.mark.parametrize("closer", ["host", "viewer"])
def test_close_in_any_state(state: State, closer: str) -> None:
    pair = Pair().handshake(until=state)
    sender = getattr(pair, closer)
    receiver = pair.viewer if closer == "host" else pair.host
    received = receiver.receive(sender.send(Close(4004, "policy"), 0.0), 0.0)
    assert sender.close_reason == (4004, "policy")
    assert received == Close(4004, "policy")
    assert sender.state is receiver.state is State.CLOSED
    assert receiver.next_deadline() is None


# --- every message in every wrong state --------------------------------------------------------

SAMPLES: dict[type, object] = {
    Hello: hello(),
    Auth: auth("A" * 24),
    Welcome: welcome(),
    Screen: Screen(WIDTH, HEIGHT),
    Ack: Ack(0),
    Ping: Ping(1),
    Pong: Pong(1),
    Pointer: Pointer(1, 1, 0),
    Wheel: Wheel(1, 1, 0, 1),
    Key: Key(0x61, True),
    Sync: Sync(1),
    InputAck: InputAck(1, True, ""),
    Refresh: Refresh(),
    Update: Update(0, 0, (jpeg(0, 0, 1, 1),)),
    presence.Peer: presence.Peer(2, "other", "view", True),
    presence.Control: presence.Control(2),
    presence.RequestControl: presence.RequestControl(),
    presence.ReleaseControl: presence.ReleaseControl(),
    presence.ControlRequest: presence.ControlRequest(2, "other"),
    presence.AnswerControl: presence.AnswerControl(2, True),
    m.Notice: m.Notice("waiting"),
    m.Prefs: m.Prefs(0, 30, 1_000_000),
    # File transfer (rdesk/protocol/transfer.py).
    xfer.XferList: xfer.XferList(1),
    xfer.XferPut: xfer.XferPut(1, "a.txt", 3),
    xfer.XferGet: xfer.XferGet(1, "a.txt"),
    xfer.XferReady: xfer.XferReady(1, "a.txt", 3),
    xfer.XferEntry: xfer.XferEntry(1, "a.txt", 3),
    xfer.XferData: xfer.XferData(1, 0, b"abc"),
    xfer.XferCredit: xfer.XferCredit(1, 1),
    xfer.XferEnd: xfer.XferEnd(1, "0" * 64),
    xfer.XferCancel: xfer.XferCancel(1, "stop"),
    xfer.XferDone: xfer.XferDone(1, True, "a.txt", 3, "0" * 64, ""),
    # Clipboard (rdesk/protocol/clipboard.py).
    clip.ClipOffer: clip.ClipOffer(1, "clipboard", 3),
    clip.ClipData: clip.ClipData(1, "YWJj"),
    clip.ClipResult: clip.ClipResult(1, False, "off"),
    clip.ClipGet: clip.ClipGet(1, "primary"),
    # The host's cursor (rdesk/protocol/cursor.py).
    cur.CursorShape: cur.CursorShape(1, 16, 16, 0, 0, 100),
    cur.CursorData: cur.CursorData(1, "YWJj"),
    cur.CursorUse: cur.CursorUse(1),
    # Monitors (rdesk/protocol/monitors.py).
    mon.MonitorInfo: mon.MonitorInfo(0, 2, "left", 0, 0, 320, 240, True),
    mon.MonitorCurrent: mon.MonitorCurrent(-1),
    mon.SelectMonitor: mon.SelectMonitor(1),
    # Resizing a virtual desktop (rdesk/protocol/resize.py).
    rsz.Resize: rsz.Resize(7, 1280, 720),
    rsz.ResizeResult: rsz.ResizeResult(7, False, 640, 480, "not a virtual desktop"),
    # Video (rdesk/protocol/video.py).
    vid.Video: vid.Video("h264"),
    vid.Keyframe: vid.Keyframe(0),
    vid.VideoEnd: vid.VideoEnd(7),
    vid.AckHold: vid.AckHold(),
}
assert set(SAMPLES) == set(CONTROL_TYPES.values()) - {Close} | {Update, xfer.XferData}

STATES = [State.START, State.AWAIT_AUTH, State.AUTHENTICATING, State.ACTIVE]
WRONG_RECEIVES = [
    (role, state, cls)
    for role, state in itertools.product(Role, STATES)
    for cls in SAMPLES
    if cls not in TRANSITIONS[(role, state)][Direction.RECEIVE]
]
WRONG_SENDS = [
    (role, state, cls)
    for role, state in itertools.product(Role, STATES)
    for cls in SAMPLES
    if cls not in TRANSITIONS[(role, state)][Direction.SEND]
]


def session_in(role: Role, state: State) -> Session:
    pair = Pair().handshake(until=state)
    s = pair.host if role is Role.HOST else pair.viewer
    assert s.state is state
    return s


def snapshot(s: Session) -> tuple[object, ...]:
    return (s.state, s.nonce, s.width, s.height, s.access, s.flow.count, s.next_deadline(),
            s._last_update_seq)


def ident(value: object) -> str:
    return getattr(value, "value", None) or getattr(value, "__name__", str(value))


@pytest.mark.parametrize(("role", "state", "cls"), WRONG_RECEIVES, ids=ident)
def test_receive_in_wrong_state(role: Role, state: State, cls: type) -> None:
    s = session_in(role, state)
    before = snapshot(s)
    with pytest.raises(RemoteProtocolError) as info:
        s.receive(encode(SAMPLES[cls]), 0.0)  # type: ignore[arg-type]
    assert info.value.code is CloseCode.PROTOCOL_ERROR
    assert snapshot(s) == before


@pytest.mark.parametrize(("role", "state", "cls"), WRONG_SENDS, ids=ident)
def test_send_in_wrong_state(role: Role, state: State, cls: type) -> None:
    s = session_in(role, state)
    before = snapshot(s)
    with pytest.raises(LocalProtocolError):
        s.send(SAMPLES[cls], 0.0)  # type: ignore[arg-type]
    assert snapshot(s) == before


def test_wrong_state_table_is_not_empty() -> None:
    # Each of the 8 (role, state) pairs refuses something; the handshake messages are refused
    # everywhere but their own state.
    assert {(r, s) for r, s, _ in WRONG_RECEIVES} == set(itertools.product(Role, STATES))
    assert (Role.HOST, State.ACTIVE, Auth) in WRONG_RECEIVES
    assert (Role.VIEWER, State.ACTIVE, Hello) in WRONG_RECEIVES
    assert (Role.HOST, State.AWAIT_AUTH, Pointer) in WRONG_RECEIVES
    assert (Role.VIEWER, State.AUTHENTICATING, Update) in WRONG_RECEIVES


@pytest.mark.parametrize(("role", "state"), list(itertools.product(Role, STATES)), ids=ident)
def test_garbage_in_any_state(role: Role, state: State) -> None:
    s = session_in(role, state)
    before = snapshot(s)
    for frame in ("", "{}", '{"t":"ping","id":-1}', b"", b"\x01", "x" * 20000):
        with pytest.raises(RemoteProtocolError):
            s.receive(frame, 0.0)
        assert snapshot(s) == before


# --- connection-specific checks ----------------------------------------------------------------


def test_hello_version_mismatch() -> None:
    viewer = Session(Role.VIEWER, 0.0)
    with pytest.raises(RemoteProtocolError) as info:
        viewer.receive(encode(hello(version=PROTOCOL_VERSION + 1)), 0.0)
    assert info.value.code is CloseCode.VERSION_MISMATCH
    assert viewer.state is State.START


def test_auth_version_mismatch() -> None:
    pair = Pair().handshake(until=State.AWAIT_AUTH)
    assert pair.host.nonce is not None
    bad = encode(auth(pair.host.nonce, version=PROTOCOL_VERSION + 1))
    with pytest.raises(RemoteProtocolError) as info:
        pair.host.receive(bad, 0.0)
    assert info.value.code is CloseCode.VERSION_MISMATCH
    assert pair.host.state is State.AWAIT_AUTH


def test_auth_replayed_from_another_connection() -> None:
    first = Pair().handshake(until=State.AWAIT_AUTH)
    assert first.viewer.nonce is not None
    captured = first.viewer.send(auth(first.viewer.nonce), 0.0)
    second = Pair().handshake(until=State.AWAIT_AUTH)
    assert second.host.nonce != first.host.nonce
    with pytest.raises(RemoteProtocolError) as info:
        second.host.receive(captured, 0.0)
    assert info.value.code is CloseCode.AUTH_FAILED
    assert second.host.state is State.AWAIT_AUTH
    # The original connection still accepts it.
    first.host.receive(captured, 0.0)
    assert first.host.state is State.AUTHENTICATING


def test_viewer_cannot_send_auth_with_wrong_nonce() -> None:
    pair = Pair().handshake(until=State.AWAIT_AUTH)
    with pytest.raises(LocalProtocolError):
        pair.viewer.send(auth(new_nonce()), 0.0)
    assert pair.viewer.state is State.AWAIT_AUTH


def test_auth_secret_not_in_errors() -> None:
    pair = Pair().handshake(until=State.AWAIT_AUTH)
    with pytest.raises(RemoteProtocolError) as info:
        pair.host.receive(encode(auth(new_nonce(), secret="topsecret")), 0.0)
    assert "topsecret" not in str(info.value)


def active_viewer(width: int = WIDTH, height: int = HEIGHT) -> Session:
    pair = Pair().handshake(until=State.AUTHENTICATING)
    pair.h2v(welcome(width, height))
    return pair.viewer


@pytest.mark.parametrize(
    "rect",
    [
        jpeg(WIDTH - 1, 0, 2, 1),
        jpeg(0, HEIGHT - 1, 1, 2),
        jpeg(WIDTH, 0, 1, 1),
        jpeg(0, 0, WIDTH + 1, HEIGHT),
        Rect(0, 0, 10, 10, Encoding.COPY, copy_payload(WIDTH - 9, 0)),
        Rect(0, 0, 10, 10, Encoding.COPY, copy_payload(0, HEIGHT - 9)),
    ],
)
def test_update_outside_screen_refused(rect: Rect) -> None:
    viewer = active_viewer()
    with pytest.raises(RemoteProtocolError):
        viewer.receive(encode(Update(0, 0, (jpeg(0, 0, 1, 1), rect))), 0.0)
    # The refused update did not use up its sequence number.
    viewer.receive(encode(Update(0, 0, (jpeg(0, 0, WIDTH, HEIGHT),))), 0.0)


def test_host_cannot_send_update_outside_screen() -> None:
    pair = Pair().handshake()
    for rect in (jpeg(WIDTH, 0, 1, 1), Rect(0, 0, 2, 2, Encoding.COPY, copy_payload(WIDTH - 1, 0))):
        with pytest.raises(LocalProtocolError):
            pair.host.send(Update(0, 0, (rect,)), 0.0)
    assert pair.host.flow.count == 0


def test_screen_resize_changes_bounds() -> None:
    pair = Pair().handshake()
    pair.h2v(Screen(100, 50))
    pair.h2v(Update(0, 0, (jpeg(0, 0, 100, 50),)))
    with pytest.raises(LocalProtocolError):
        pair.host.send(Update(1, 0, (jpeg(0, 0, 101, 50),)), 0.0)
    with pytest.raises(RemoteProtocolError):
        pair.viewer.receive(encode(Update(1, 0, (jpeg(0, 0, 100, 51),))), 0.0)
    pair.h2v(Screen(2000, 1000))
    assert (pair.viewer.width, pair.viewer.height) == (2000, 1000)


def test_invalid_screen_send_changes_nothing() -> None:
    pair = Pair().handshake()
    with pytest.raises(LocalProtocolError):
        pair.host.send(Screen(0, 0), 0.0)
    assert (pair.host.width, pair.host.height) == (WIDTH, HEIGHT)


def test_update_seq_must_increase() -> None:
    viewer = active_viewer()
    viewer.receive(encode(Update(5, 0, ())), 0.0)
    for seq in (5, 4, 0):
        with pytest.raises(RemoteProtocolError):
            viewer.receive(encode(Update(seq, 0, ())), 0.0)
    viewer.receive(encode(Update(6, 0, ())), 0.0)


def test_host_update_seq_must_increase_and_respect_window() -> None:
    pair = Pair(window=2).handshake()
    pair.h2v(Update(1, 0, ()))
    with pytest.raises(LocalProtocolError):
        pair.host.send(Update(1, 0, ()), 0.0)
    pair.h2v(Update(2, 0, ()))
    with pytest.raises(LocalProtocolError):
        pair.host.send(Update(3, 0, ()), 0.0)  # window of 2 is full
    pair.v2h(Ack(2))
    pair.h2v(Update(3, 0, ()))


def test_ack_hold_only_after_ack_hold() -> None:
    """``ack.hold_us`` is negotiated: a viewer may send it, and a host accept it, only once the
    host sent ``ack_hold``; before, both ends refuse it and the sample has no hold."""
    pair = Pair().handshake()
    pair.h2v(Update(0, 0, ()), 0.0)
    with pytest.raises(LocalProtocolError, match="ack_hold"):
        pair.viewer.send(Ack(0, 5_000), 0.1)
    with pytest.raises(RemoteProtocolError, match="ack_hold"):  # an older host's view of it
        pair.host.receive(encode(Ack(0, 5_000)), 0.1)
    assert pair.host.flow.count == 1  # the refused ack changed nothing
    samples: list[Sample] = []
    pair.host.flow.listener = lambda now, sample: samples.append(sample)
    pair.v2h(Ack(0), 0.1)
    assert samples[-1].hold == 0.0
    assert not pair.viewer.hold_acks
    pair.h2v(vid.AckHold(), 0.2)
    assert pair.viewer.hold_acks and pair.host.hold_acks
    pair.h2v(Update(1, 0, ()), 0.2)
    pair.h2v(Update(2, 0, ()), 0.25)
    pair.v2h(Ack(2, 20_000), 0.4)  # cumulative: 1 and 2, 20 ms held
    assert [(s.seq, s.hold) for s in samples[-2:]] == [(1, 0.02), (2, 0.02)]
    assert samples[-1].rtt == pytest.approx(0.15)  # the round trip stays whole
    pair.h2v(Update(3, 0, ()), 0.5)
    pair.v2h(Ack(3), 0.6)  # a hold stays optional
    assert samples[-1].hold == 0.0


def test_ack_checks() -> None:
    pair = Pair().handshake()
    with pytest.raises(RemoteProtocolError):  # nothing sent yet
        pair.host.receive(encode(Ack(0)), 0.0)
    pair.h2v(Update(0, 0, ()))
    pair.h2v(Update(1, 0, ()))
    with pytest.raises(RemoteProtocolError):  # never sent
        pair.host.receive(encode(Ack(2)), 0.0)
    pair.v2h(Ack(0))
    with pytest.raises(RemoteProtocolError):  # already acknowledged
        pair.host.receive(encode(Ack(0)), 0.0)
    pair.v2h(Ack(1))
    with pytest.raises(RemoteProtocolError):
        pair.host.receive(encode(Ack(1)), 0.0)
    assert pair.host.state is State.ACTIVE


# --- closing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
def test_close_frame(state: State) -> None:
    s = session_in(Role.HOST, state)
    frame = s.close_frame(CloseCode.POLICY, "too many\nviewers\x00" + "x" * 1000)
    assert isinstance(frame, str)
    message = decode(frame)
    assert isinstance(message, Close)
    assert message.code == CloseCode.POLICY
    assert message.reason.startswith("too manyviewers")
    assert len(message.reason) == 256
    assert s.state is State.CLOSED
    assert s.close_reason == (CloseCode.POLICY, message.reason)
    assert s.close_frame(CloseCode.NORMAL, "again") is None
    assert s.next_deadline() is None
    assert s.handle_timer(1e9) == []
    with pytest.raises(LocalProtocolError):
        s.send(Ping(1), 0.0)
    with pytest.raises(LocalProtocolError):
        s.send(Close(1000, ""), 0.0)
    with pytest.raises(LocalProtocolError):
        s.receive(encode(Ping(1)), 0.0)
    with pytest.raises(LocalProtocolError):
        s.receive(b"garbage", 0.0)


def test_close_enum_code() -> None:
    # A CloseCode member is not a plain int: the message refuses it, close_frame converts it.
    s = Session(Role.HOST, 0.0)
    with pytest.raises(LocalProtocolError):
        s.send(Close(CloseCode.SHUTDOWN, ""), 0.0)
    frame = s.close_frame(CloseCode.SHUTDOWN, "")
    assert frame is not None and decode(frame) == Close(4006, "")


def test_close_frame_invalid_code() -> None:
    s = Session(Role.HOST, 0.0)
    with pytest.raises(LocalProtocolError):
        s.close_frame(999, "")
    assert s.state is State.START


def test_received_close_closes() -> None:
    pair = Pair().handshake()
    pair.viewer.receive(encode(Close(int(CloseCode.AUTH_FAILED), "nope")), 0.0)
    assert pair.viewer.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.viewer.send(Ack(0), 0.0)


# --- timers ------------------------------------------------------------------------------------


def test_default_timer_values() -> None:
    assert (HANDSHAKE_TIMEOUT, PING_INTERVAL, PING_TIMEOUT) == (10.0, 15.0, 20.0)
    assert set(session_module.__all__) >= {"Session", "HANDSHAKE_TIMEOUT"}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("state", [State.START, State.AWAIT_AUTH, State.AUTHENTICATING])
def test_handshake_timeout(role: Role, state: State) -> None:
    pair = Pair(now=100.0)
    pair.handshake(now=101.0, until=state)
    s = pair.host if role is Role.HOST else pair.viewer
    assert s.next_deadline() == 100.0 + HANDSHAKE_TIMEOUT
    assert s.handle_timer(109.9) == []
    with pytest.raises(RemoteProtocolError) as info:
        s.handle_timer(110.0)
    assert info.value.code is CloseCode.HANDSHAKE_TIMEOUT


def test_no_handshake_timeout_once_active() -> None:
    pair = Pair(now=0.0, ping_interval=None).handshake(now=9.0)
    assert pair.host.next_deadline() is None
    assert pair.host.handle_timer(1000.0) == []


@pytest.mark.parametrize("role", list(Role))
def test_ping_pong(role: Role) -> None:
    pair = Pair(now=0.0).handshake(now=1.0)
    me, peer = (pair.host, pair.viewer) if role is Role.HOST else (pair.viewer, pair.host)
    assert me.next_deadline() == 1.0 + PING_INTERVAL
    assert me.handle_timer(15.9) == []
    (frame,) = me.handle_timer(16.0)
    ping = peer.receive(frame, 16.0)
    assert isinstance(ping, Ping)
    # Waiting for the pong: the next deadline is the next ping or the pong timeout.
    assert me.next_deadline() == min(16.0 + PING_INTERVAL, 16.0 + PING_TIMEOUT)
    me.receive(peer.send(Pong(ping.id), 16.5), 16.5)
    assert me.next_deadline() == 16.0 + PING_INTERVAL
    # No UNRESPONSIVE later, and the next ping has a new id.
    (frame,) = me.handle_timer(31.0)
    ping2 = decode(frame)
    assert isinstance(ping2, Ping) and ping2.id != ping.id


def test_pong_with_wrong_id_does_not_clear_ping() -> None:
    pair = Pair(now=0.0).handshake()
    (frame,) = pair.host.handle_timer(PING_INTERVAL)
    ping = decode(frame)
    assert isinstance(ping, Ping)
    pair.v2h(Pong(ping.id + 1), PING_INTERVAL + 1)
    with pytest.raises(RemoteProtocolError) as info:
        pair.host.handle_timer(PING_INTERVAL + PING_TIMEOUT)
    assert info.value.code is CloseCode.UNRESPONSIVE


def test_missing_pong_is_unresponsive() -> None:
    pair = Pair(now=0.0).handshake()
    host = pair.host
    (frame,) = host.handle_timer(15.0)
    assert isinstance(decode(frame), Ping)
    # The next interval passes with the ping still unanswered: no second ping.
    assert host.next_deadline() == 30.0
    assert host.handle_timer(30.0) == []
    assert host.next_deadline() == 35.0
    assert host.handle_timer(34.9) == []
    with pytest.raises(RemoteProtocolError) as info:
        host.handle_timer(35.0)
    assert info.value.code is CloseCode.UNRESPONSIVE


def test_ping_on_demand_measures_the_round_trip() -> None:
    pair = Pair(now=0.0).handshake(now=1.0)
    viewer = pair.viewer
    assert viewer.rtt is None and viewer.min_rtt is None
    frame = viewer.ping(2.0)
    assert frame is not None
    # One ping outstanding at a time: asking again before the pong sends nothing.
    assert viewer.ping(2.1) is None
    ping = pair.host.receive(frame, 2.0)
    assert isinstance(ping, Ping)
    viewer.receive(pair.host.send(Pong(ping.id), 2.25), 2.25)
    assert viewer.rtt == pytest.approx(0.25) and viewer.min_rtt == pytest.approx(0.25)
    # The keepalive restarts from the on-demand ping: no extra ping right after it.
    assert viewer.next_deadline() == 2.0 + PING_INTERVAL
    again = viewer.ping(3.0)
    assert again is not None
    ping = pair.host.receive(again, 3.0)
    assert isinstance(ping, Ping)
    viewer.receive(pair.host.send(Pong(ping.id), 3.5), 3.5)
    assert viewer.rtt == pytest.approx(0.5) and viewer.min_rtt == pytest.approx(0.25)


def test_on_demand_ping_unanswered_is_unresponsive() -> None:
    pair = Pair(now=0.0, ping_interval=None).handshake()
    assert pair.viewer.ping(5.0) is not None
    assert pair.viewer.next_deadline() == 5.0 + PING_TIMEOUT
    with pytest.raises(RemoteProtocolError) as info:
        pair.viewer.handle_timer(5.0 + PING_TIMEOUT)
    assert info.value.code is CloseCode.UNRESPONSIVE


def test_no_ping_on_demand_before_active() -> None:
    assert Session(Role.VIEWER, 0.0).ping(1.0) is None


def test_no_pings_when_disabled() -> None:
    pair = Pair(now=0.0, ping_interval=None).handshake()
    assert pair.host.next_deadline() is None
    assert pair.host.handle_timer(1e6) == []


def test_no_pings_before_active() -> None:
    host = Session(Role.HOST, 0.0, handshake_timeout=1e9)
    assert host.handle_timer(1000.0) == []


# --- random legal and illegal actions on a connected pair --------------------------------------


HOST_MESSAGES = [Hello, Welcome, Screen, Update, Ping, Pong, InputAck, Auth, Ack, Pointer]
VIEWER_MESSAGES = [Auth, Ack, Ping, Pong, Pointer, Wheel, Key, Sync, Refresh, Hello, Update,
                   Welcome]


FAULT = st.integers(0, 3)  # destructive rules act only when this draws 0, so runs live longer


class SessionPair(RuleBasedStateMachine):
    """A host and a viewer on a perfect wire, driven at random.

    Invariant: both ends always agree on the state. Every action the state machine forbids
    raises the right error class and changes nothing; every peer fault detected is then
    answered with a close, after which both ends are ``CLOSED``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.pair = Pair(now=0.0)
        self.next_seq = 0
        self.acked = -1
        self.pending_pings: dict[str, list[int]] = {"host": [], "viewer": []}

    @initialize(until=st.sampled_from(STATES))
    def start(self, until: State) -> None:
        """Most runs start part-way through (or past) the handshake."""
        self.pair.handshake(now=self.now, until=until)

    # helpers

    def sessions(self, who: str) -> tuple[Session, Session]:
        return (self.pair.host, self.pair.viewer) if who == "host" else (
            self.pair.viewer, self.pair.host)

    def build(self, sender: Session, cls: type, data: st.DataObject) -> object:
        """A message of type ``cls`` that is valid for ``sender`` to send right now."""
        if cls is Hello:
            return hello()
        if cls is Auth:
            return auth(sender.nonce or new_nonce())
        if cls is Welcome:
            w = data.draw(st.integers(1, 3000))
            h = data.draw(st.integers(1, 3000))
            return Welcome(data.draw(st.sampled_from(["control", "view"])), 1, w, h, "h")
        if cls is Screen:
            return Screen(data.draw(st.integers(1, 3000)), data.draw(st.integers(1, 3000)))
        if cls is Update:
            rects = []
            if sender.width and sender.height:
                for _ in range(data.draw(st.integers(0, 3))):
                    x = data.draw(st.integers(0, sender.width - 1))
                    y = data.draw(st.integers(0, sender.height - 1))
                    w = data.draw(st.integers(1, sender.width - x))
                    h = data.draw(st.integers(1, sender.height - y))
                    if data.draw(st.booleans()):
                        sx = data.draw(st.integers(0, sender.width - w))
                        sy = data.draw(st.integers(0, sender.height - h))
                        rects.append(Rect(x, y, w, h, Encoding.COPY, copy_payload(sx, sy)))
                    else:
                        rects.append(jpeg(x, y, w, h))
            seq = self.next_seq + data.draw(st.integers(0, 3))
            return Update(seq, int(self.now * 1e6), tuple(rects))
        if cls is Ack:
            if self.next_seq - 1 > self.acked:
                return Ack(data.draw(st.integers(self.acked + 1, self.next_seq - 1)))
            return Ack(self.acked + 1)
        if cls is Pong:
            pending = self.pending_pings["viewer" if sender is self.pair.host else "host"]
            return Pong(pending.pop(0) if pending else data.draw(st.integers(0, 5)))
        if cls in (Pointer, Wheel) and sender.width:
            x = data.draw(st.integers(0, sender.width - 1))
            y = data.draw(st.integers(0, sender.height - 1))
            return Pointer(x, y, 1) if cls is Pointer else Wheel(x, y, 0, 1)
        return SAMPLES[cls]

    def fault(self, victim: Session, other: Session, exc: RemoteProtocolError) -> None:
        """What the I/O layer does with a peer fault: send Close, drop the connection."""
        assert isinstance(exc.code, CloseCode)
        frame = victim.close_frame(exc.code, "protocol error")
        assert frame is not None
        assert victim.state is State.CLOSED
        if other.state is not State.CLOSED:
            other.receive(frame, self.now)
        assert other.state is State.CLOSED

    def deliver(self, sender: Session, receiver: Session, cls: type, data: st.DataObject) -> None:
        message = self.build(sender, cls, data)
        allowed = TRANSITIONS[(sender.role, sender.state)][Direction.SEND] if (
            sender.state is not State.CLOSED) else {}
        before = snapshot(sender)
        window_full = isinstance(message, Update) and not sender.flow.can_send()
        if cls not in allowed or window_full or sender.state is State.CLOSED:
            with pytest.raises(LocalProtocolError):
                sender.send(message, self.now)  # type: ignore[arg-type]
            assert snapshot(sender) == before
            return
        frame = sender.send(message, self.now)  # type: ignore[arg-type]
        if isinstance(message, Update):
            self.next_seq = message.seq + 1
        if isinstance(message, Ack) and not self.acked < message.seq < self.next_seq:
            # The viewer may send it, but the host never sent that update (or had it acked).
            with pytest.raises(RemoteProtocolError) as info:
                receiver.receive(frame, self.now)
            self.fault(receiver, sender, info.value)
            return
        if isinstance(message, Ack):
            self.acked = message.seq
        try:
            received = receiver.receive(frame, self.now)
        except RemoteProtocolError as exc:  # pragma: no cover - a legal send must be accepted
            raise AssertionError(f"{message!r} sent legally but refused: {exc}") from exc
        assert received == message
        if isinstance(message, Ping):
            self.pending_pings["host" if sender is self.pair.host else "viewer"].append(message.id)

    # rules

    @rule(cls=st.sampled_from(HOST_MESSAGES), data=st.data())
    def host_sends(self, cls: type, data: st.DataObject) -> None:
        self.deliver(self.pair.host, self.pair.viewer, cls, data)

    @rule(cls=st.sampled_from(VIEWER_MESSAGES), data=st.data())
    def viewer_sends(self, cls: type, data: st.DataObject) -> None:
        self.deliver(self.pair.viewer, self.pair.host, cls, data)

    @precondition(lambda self: self.pair.host.state is not State.CLOSED)
    @rule(who=st.sampled_from(["host", "viewer"]), cls=st.sampled_from(list(SAMPLES)), go=FAULT)
    def forged_message(self, who: str, cls: type, go: int) -> None:
        """A message the peer's state machine would not let it send, forged onto the wire."""
        if go:
            return
        victim, other = self.sessions(who)
        if cls in TRANSITIONS[(victim.role, victim.state)][Direction.RECEIVE]:
            return
        before = snapshot(victim)
        with pytest.raises(RemoteProtocolError) as info:
            victim.receive(encode(SAMPLES[cls]), self.now)  # type: ignore[arg-type]
        assert snapshot(victim) == before
        self.fault(victim, other, info.value)

    @precondition(lambda self: self.pair.host.state is not State.CLOSED)
    @rule(who=st.sampled_from(["host", "viewer"]),
          frame=st.one_of(st.binary(max_size=40), st.text(max_size=40)), go=FAULT)
    def garbage(self, who: str, frame: str | bytes, go: int) -> None:
        if go:
            return
        victim, other = self.sessions(who)
        before = snapshot(victim)
        try:
            message = decode(frame)
        except RemoteProtocolError:
            with pytest.raises(RemoteProtocolError) as info:
                victim.receive(frame, self.now)
            assert snapshot(victim) == before
            self.fault(victim, other, info.value)
            return
        # Random input happened to be a valid message: the forged_message rule covers it.
        del message

    @precondition(lambda self: self.pair.viewer.state is State.ACTIVE)
    @rule(data=st.data(), go=FAULT)
    def bad_update(self, data: st.DataObject, go: int) -> None:
        """A host bug or attack: an update outside the screen or not after the last one."""
        if go:
            return
        viewer = self.pair.viewer
        if data.draw(st.booleans()) and viewer._last_update_seq >= 0:
            update = Update(data.draw(st.integers(0, viewer._last_update_seq)), 0, ())
        else:
            x = data.draw(st.integers(0, viewer.width))
            update = Update(self.next_seq + 100, 0, (jpeg(x, 0, viewer.width - x + 1, 1),))
        before = snapshot(viewer)
        with pytest.raises(RemoteProtocolError) as info:
            viewer.receive(codec.encode(update), self.now)
        assert snapshot(viewer) == before
        self.fault(viewer, self.pair.host, info.value)

    @precondition(lambda self: self.pair.host.state is State.ACTIVE)
    @rule(data=st.data(), go=FAULT)
    def bad_ack(self, data: st.DataObject, go: int) -> None:
        """An ack of an update never sent or already acknowledged."""
        if go:
            return
        host = self.pair.host
        if data.draw(st.booleans()) and self.acked >= 0:
            seq = data.draw(st.integers(0, self.acked))
        else:
            seq = self.next_seq + data.draw(st.integers(0, 5))
        before = snapshot(host)
        with pytest.raises(RemoteProtocolError) as info:
            host.receive(encode(Ack(seq)), self.now)
        assert snapshot(host) == before
        self.fault(host, self.pair.viewer, info.value)

    @rule(data=st.data())
    def progress(self, data: st.DataObject) -> None:
        """The next legal handshake step, so that runs reach ACTIVE often."""
        state = self.pair.host.state
        if state is State.START:
            self.deliver(self.pair.host, self.pair.viewer, Hello, data)
        elif state is State.AWAIT_AUTH:
            self.deliver(self.pair.viewer, self.pair.host, Auth, data)
        elif state is State.AUTHENTICATING:
            self.deliver(self.pair.host, self.pair.viewer, Welcome, data)

    @rule(who=st.sampled_from(["host", "viewer"]), go=FAULT)
    def close(self, who: str, go: int) -> None:
        if go:
            return
        closer, other = self.sessions(who)
        frame = closer.close_frame(CloseCode.NORMAL, "bye")
        if frame is None:
            assert closer.state is State.CLOSED
            return
        other.receive(frame, self.now)
        assert closer.state is other.state is State.CLOSED

    @rule(dt=st.sampled_from([0.25, 1.0, 2.0, 6.0, 16.0, 21.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        for who in ("host", "viewer"):
            me, peer = self.sessions(who)
            deadline = me.next_deadline()
            try:
                frames = me.handle_timer(self.now)
            except RemoteProtocolError as exc:
                assert deadline is not None and deadline <= self.now
                assert exc.code in (CloseCode.HANDSHAKE_TIMEOUT, CloseCode.UNRESPONSIVE)
                if exc.code is CloseCode.HANDSHAKE_TIMEOUT:
                    assert me.state is not State.ACTIVE
                self.fault(me, peer, exc)
                return
            for frame in frames:
                ping = peer.receive(frame, self.now)
                assert isinstance(ping, Ping)
                self.pending_pings[who].append(ping.id)

    # invariants

    @invariant()
    def states_agree(self) -> None:
        assert self.pair.host.state is self.pair.viewer.state

    @invariant()
    def window_respected(self) -> None:
        assert self.pair.host.flow.count <= self.pair.host.flow.window

    @invariant()
    def closed_sessions_have_no_timers(self) -> None:
        for s in (self.pair.host, self.pair.viewer):
            if s.state is State.CLOSED:
                assert s.next_deadline() is None
                assert s.close_reason is not None


SessionPair.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_session_pair = SessionPair.TestCase


def test_samples_are_valid() -> None:
    for message in SAMPLES.values():
        assert decode(encode(message)) == message  # type: ignore[arg-type]
    assert dataclasses.is_dataclass(SAMPLES[Hello])
