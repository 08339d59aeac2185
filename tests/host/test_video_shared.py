"""Shared video encoders (rdesk/host/video/shared.py): which streams share a group, one encode
per frame, every member gets every unit in order, a joiner takes the group's kept key unit or
forces one at most every JOIN_INTERVAL, a slow or re-rated member leaves. The pure
:class:`Groups` with a fake clock, and :class:`SharedEncoders` over counting fake encoders (real
x264 in tests/e2e/test_video_shared.py)."""

from __future__ import annotations

import threading

import numpy as np

from rdesk.host.video.encoder import FRAME_RATE
from rdesk.host.video.shared import (
    FAST_ENTER,
    FAST_LEAVE,
    FAST_RATE,
    JOIN_BACKLOG,
    JOIN_INTERVAL,
    MAX_BEHIND,
    RATE_SETTLE,
    REJOIN_AFTER,
    SHARE_RATIO,
    Groups,
    SharedEncoders,
)

RECT = (0, 0, 64, 32)
FRAME = np.zeros((32, 64, 4), np.uint8)


class CountingEncoder:
    """Numbers its units: unit ``n`` of encoder ``e`` is b"e:n"; key when asked or first."""

    made = 0

    def __init__(self, size: tuple[int, int], bitrate: int, *, fps: int) -> None:
        self.size, self.bitrate, self.fps = size, bitrate, fps
        self.name = CountingEncoder.made
        CountingEncoder.made += 1
        self.count = 0

    def encode(self, frame: np.ndarray, rect: tuple[int, int, int, int], key: bool
               ) -> tuple[bytes, bool]:
        key = key or self.count == 0
        unit = f"{self.name}:{self.count}".encode()
        self.count += 1
        return unit, key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def hub() -> tuple[SharedEncoders, Clock]:
    clock = Clock()
    return SharedEncoders(CountingEncoder, clock=clock), clock


def test_two_viewers_share_one_encode_per_frame() -> None:
    shared, clock = hub()
    a = shared.member((64, 32), 2_000_000)
    b = shared.member((64, 32), 2_500_000)  # within SHARE_RATIO
    first = a.units(FRAME, RECT, key=True)
    assert first == [(b"0:0", True)]
    clock.now += 0.01
    got_b = b.units(FRAME, RECT, key=True)  # joins at once: the group's key unit is kept
    assert shared.groups == 1 and got_b == first and shared.encodes == 1
    encodes = shared.encodes
    # Alternating rounds: each gets every unit once, in order (a's rounds encode, b's take
    # what a's made), and the group encodes once per frame.
    seen_a, seen_b = [], [u for u, _ in got_b]
    for _ in range(10):
        clock.now += 0.033
        seen_a += [u for u, _ in a.units(FRAME, RECT, key=False)]
        seen_b += [u for u, _ in b.units(FRAME, RECT, key=False)]
    assert seen_a == seen_b[1:]  # (b's first is the key unit both began with)
    assert len(set(seen_b)) == len(seen_b) == 11
    assert shared.encodes - encodes == 10  # not 20


def test_a_joiner_waits_alone_until_a_key_may_be_forced() -> None:
    shared, clock = hub()
    a = shared.member((64, 32), 2_000_000)
    b = shared.member((64, 32), 2_000_000)
    for _ in range(JOIN_BACKLOG + 1):  # its key unit no longer kept
        a.units(FRAME, RECT, key=False)
    clock.now += JOIN_INTERVAL / 4
    (_, key), = b.units(FRAME, RECT, key=True)
    assert key and shared.groups == 2  # its own group, its own key unit
    clock.now += JOIN_INTERVAL / 4
    assert shared.groups == 2 and a.units(FRAME, RECT, key=False)  # a is older: stays
    b.units(FRAME, RECT, key=False)
    assert shared.groups == 2  # too soon for another key unit in a's group
    clock.now += JOIN_INTERVAL
    units = b.units(FRAME, RECT, key=False)
    assert shared.groups == 1 and units[-1][1]  # moved into a's group at a key unit
    assert a.units(FRAME, RECT, key=False)[0][1]  # a gets that key unit too


def test_rates_apart_do_not_share() -> None:
    shared, clock = hub()
    a = shared.member((64, 32), 2_000_000)
    b = shared.member((64, 32), int(2_000_000 * SHARE_RATIO) + 1000)
    c = shared.member((64, 32), 2_000_000)
    a.units(FRAME, RECT, key=True)
    clock.now += JOIN_INTERVAL
    b.units(FRAME, RECT, key=True)
    c.units(FRAME, (64, 0, 64, 32), key=True)  # same size, another place
    assert shared.groups == 3


def test_a_slow_member_leaves_and_waits_to_rejoin() -> None:
    groups = Groups()
    now = 0.0
    groups.settle(1, RECT, 1_000_000, True, now)
    for step in range(2):
        now += JOIN_INTERVAL
        group = groups.settle(step + 2, RECT, 1_000_000, True, now)
    assert len(groups.groups) == 1 and len(group.members) == 3
    for _ in range(MAX_BEHIND + 1):  # member 1 keeps asking; member 3 never does
        groups.settle(1, RECT, 1_000_000, False, now)
        step_ = groups.due(1)
        assert step_.encode
        groups.record(step_.group, b"u", step_.key, now)
        groups.take(1)
    alone = groups.settle(3, RECT, 1_000_000, False, now)
    assert alone is not group and list(alone.members) == [3]
    assert groups.due(3).key  # a new group: a key unit
    now += REJOIN_AFTER / 2 + JOIN_INTERVAL
    assert groups.settle(3, RECT, 1_000_000, False, now) is alone  # held apart
    now += REJOIN_AFTER
    assert groups.settle(3, RECT, 1_000_000, False, now) is group


def test_keyframe_request_gives_every_member_a_key() -> None:
    groups = Groups()
    groups.settle(1, RECT, 1_000_000, True, 0.0)
    groups.record(groups.due(1).group, b"k", True, 0.0)
    groups.take(1)
    groups.settle(2, RECT, 1_000_000, False, 0.1)
    assert not groups.due(2).encode  # the joiner takes the kept key unit
    assert groups.take(2) == [(b"k", True)] and groups.take(1) == []
    groups.settle(1, RECT, 1_000_000, True, JOIN_INTERVAL + 0.1)  # a viewer's keyframe
    step = groups.due(1)
    assert step.encode and step.key
    groups.record(step.group, b"k3", True, JOIN_INTERVAL + 0.1)
    assert groups.take(1) == groups.take(2) == [(b"k3", True)]  # both get the key unit
    groups.settle(2, RECT, 1_000_000, False, JOIN_INTERVAL + 0.2)
    assert groups.due(2).encode and not groups.due(2).key


def test_closing_frees_the_group_and_its_encoder() -> None:
    shared, clock = hub()
    a = shared.member((64, 32), 2_000_000)
    b = shared.member((64, 32), 2_000_000)
    a.units(FRAME, RECT, key=True)
    clock.now += JOIN_INTERVAL
    b.units(FRAME, RECT, key=True)
    a.close()
    assert shared.groups == 1
    assert b.units(FRAME, RECT, key=False)  # b goes on alone on the same encoder
    b.close()
    assert shared.groups == 0
    assert b.units(FRAME, RECT, key=False) == []  # a closed member gets nothing


def test_streams_restarted_together_share_again_at_once() -> None:
    groups = Groups()
    groups.settle(1, RECT, 1_000_000, True, 0.0)
    old = groups.settle(2, RECT, 1_000_000, False, 0.01)
    for member in (1, 2):  # both restart higher, one round apart
        group = groups.settle(member, RECT, 3_000_000, True, 5.0 + member / 30)
        step = groups.due(member)
        if step.encode:
            groups.record(step.group, b"key", step.key, 5.0 + member / 30)
        assert groups.take(member) == [(b"key", True)]
    assert group is not old and sorted(group.members) == [1, 2]  # one new key unit, shared
    assert 2 not in old.members


def test_a_joiner_at_a_kept_key_forces_no_other() -> None:
    """A new stream asks for a key unit; joining at the group's kept key unit, it has one."""
    groups = Groups()
    groups.settle(1, RECT, 1_000_000, True, 0.0)
    groups.record(groups.due(1).group, b"k", True, 0.0)
    groups.take(1)
    group = groups.settle(2, RECT, 1_000_000, True, 0.02)
    assert not group.want_key and groups.take(2) == [(b"k", True)]
    groups.settle(1, RECT, 1_000_000, False, 0.03)
    assert groups.due(1).encode and not groups.due(1).key  # no second key unit for anyone


def test_restarted_at_another_rate_leaves() -> None:
    groups = Groups()
    groups.settle(1, RECT, 1_000_000, True, 0.0)
    first = groups.settle(2, RECT, 1_000_000, False, JOIN_INTERVAL)
    assert len(first.members) == 2
    other = groups.settle(2, RECT, 3_000_000, True, JOIN_INTERVAL + 0.1)
    assert other is not first and list(first.members) == [1]


def test_threads_encode_once_per_frame() -> None:
    """Viewers' encoding threads at once: every member still gets every unit, in order."""
    shared, clock = hub()
    members = [shared.member((64, 32), 2_000_000) for _ in range(4)]
    members[0].units(FRAME, RECT, key=True)
    for m in members[1:]:  # one join (one forced key unit) per JOIN_INTERVAL
        clock.now += JOIN_INTERVAL
        m.units(FRAME, RECT, key=False)
    assert shared.groups == 1
    seen: list[list[bytes]] = [[] for _ in members]

    def viewer(i: int) -> None:
        for _ in range(50):
            seen[i] += [u for u, _ in members[i].units(FRAME, RECT, key=False)]

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in seen:  # in order, none twice (a member that fell behind gets its own group)
        assert len(got) == len(set(got))
    assert shared.encodes < 4 * 50 + 4


def _rounds(shared: SharedEncoders, clock: Clock, members: list, fps: float, seconds: float
            ) -> list[tuple[bytes, bool]]:
    """Every member asks once a frame at ``fps`` for ``seconds``; the first member's units."""
    got = []
    for _ in range(round(fps * seconds)):
        clock.now += 1 / fps
        for i, member in enumerate(members):
            units = member.units(FRAME, RECT, key=False)
            if i == 0:
                got += units
    return got


def _encoders(shared: SharedEncoders) -> list[CountingEncoder]:
    return list(shared._encoders.values())  # type: ignore[arg-type]


def test_a_60_fps_group_is_told_60_and_30_again_when_it_slows() -> None:
    """x264 budgets each frame as 1/rate of the bitrate: a group encoding 60 frames a second
    gets an encoder told FAST_RATE (one key unit for everyone, once RATE_SETTLE has passed),
    and one told FRAME_RATE again once its rate falls to FAST_LEAVE; 45 a second (between
    the two thresholds) changes nothing either way."""
    shared, clock = hub()
    a, b = shared.member((64, 32), 2_000_000), shared.member((64, 32), 2_000_000)
    units = _rounds(shared, clock, [a, b], 30, 3.0)
    assert [e.fps for e in _encoders(shared)] == [FRAME_RATE]
    assert sum(key for _, key in units) == 1
    before = _encoders(shared)[0]
    units = _rounds(shared, clock, [a, b], 60, RATE_SETTLE + 1.5)
    (fast,) = _encoders(shared)
    assert fast is not before and fast.fps == FAST_RATE and fast.bitrate == 2_000_000
    keys = [i for i, (_, key) in enumerate(units) if key]
    # Once the last second holds FAST_ENTER units (those at 30 a second before included).
    assert len(keys) == 1 and abs(keys[0] - (2 * (FAST_ENTER - 30) - 1)) <= 1, keys
    assert shared.groups == 1  # both members still share it
    # Between the thresholds: no change (no flapping at 45).
    _rounds(shared, clock, [a, b], 45, 3.0)
    assert _encoders(shared) == [fast]
    units = _rounds(shared, clock, [a, b], 30, 3.0)
    (slow,) = _encoders(shared)
    assert slow.fps == FRAME_RATE and sum(key for _, key in units) == 1
    assert FAST_LEAVE < 45 < FAST_ENTER


def test_the_rate_is_not_changed_within_the_settle_time_of_an_encoder() -> None:
    """A burst faster than FAST_ENTER for less than RATE_SETTLE after the encoder starts
    changes nothing: a change costs a key unit."""
    shared, clock = hub()
    a = shared.member((64, 32), 2_000_000)
    _rounds(shared, clock, [a], 60, RATE_SETTLE * 0.9)
    assert [e.fps for e in _encoders(shared)] == [FRAME_RATE]
    assert len(_rounds(shared, clock, [a], 60, 0.5)) == 30
    assert [e.fps for e in _encoders(shared)] == [FAST_RATE]
