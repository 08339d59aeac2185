"""Encoders shared by viewers that watch the same region at similar rates (issue 16).

Without sharing, each viewer's stream has an x264 encoder of its own: N viewers of one moving
region cost N encodes a frame. Here each stream holds a :class:`Member` of a **group**; the
viewers' streams in one group get the same access units from one encoder:

- A group is one region (``x, y, w, h``) of the screen at one bitrate (its encoder's, fixed
  for its life). A stream joins a group of the same rectangle whose rate is within
  :data:`SHARE_RATIO` of its own; otherwise it starts a group of its own.
- **One encode per frame.** A member asking for a frame is given the units the group encoded
  since it last asked; only a member that already has the group's latest unit makes it encode
  a new one. So the group encodes at the rate of its fastest member, and every member gets
  every unit, in order (a P unit needs the ones before it); a member's round sends the units
  it lacks, oldest first, each as an ``H264`` rectangle. A member lacking more than
  :data:`MAX_BEHIND` units (too slow for the group) leaves it for a group of its own (a key
  unit) and does not rejoin for :data:`REJOIN_AFTER` seconds.
- **Joining needs a key unit.** A stream joins a group for free while the group's last key
  unit is among its last :data:`JOIN_BACKLOG` units (it is sent that key unit and the units
  after it: streams that start or restart together share at once), or before the group's first
  unit; otherwise only when the group may encode a key unit for it: at most one forced by joins
  per :data:`JOIN_INTERVAL` seconds, so viewers arriving one by one cost a key unit a second,
  not one each. Until then the stream is a group of its own (its own key unit), and at each of
  its rounds it looks again; a group of one moves into an older or larger compatible group
  (never the other way, so two never swap).
- **The encoder is told the group's frame rate.** x264 budgets each frame as 1/rate of the
  bitrate, so a group encoding a 60 fps source on an encoder told 30 sent up to twice its
  bitrate. A group that has encoded at least :data:`FAST_ENTER` frames in the last second is
  given an encoder told :data:`FAST_RATE` (a new encoder: a key unit for every member), and one
  told :data:`~rdesk.host.video.encoder.FRAME_RATE` again at :data:`FAST_LEAVE` or fewer; never
  within :data:`RATE_SETTLE` seconds of its encoder's first unit.
- A viewer's ``keyframe`` gives every member a key unit (such requests are rate-limited per
  stream already). A member whose rate moved (its stream restarted at another rate, past the
  ratio) or whose rectangle changed leaves for a group that fits.

:class:`Groups` is that logic, pure (rates, rectangles and ``now`` in; decisions out);
:class:`SharedEncoders` runs it for one screen across the viewers' encoding threads and owns
the encoders; :meth:`SharedEncoders.member` is a stream's ``make_encoder``.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from rdesk.host.video.encoder import FRAME_RATE
from rdesk.host.video.regions import Box

__all__ = [
    "FAST_ENTER",
    "FAST_LEAVE",
    "FAST_RATE",
    "JOIN_BACKLOG",
    "JOIN_INTERVAL",
    "MAX_BEHIND",
    "RATE_SETTLE",
    "SHARE_RATIO",
    "Group",
    "Groups",
    "Member",
    "SharedEncoders",
]

#: Streams share a group when their bitrates are within this ratio of the group's.
SHARE_RATIO = 1.5
#: A member may lack at most this many of the group's units (more: it leaves the group).
MAX_BEHIND = 3
#: Units a group keeps: a joiner takes the last key unit and those after it, if all are kept.
JOIN_BACKLOG = 6
#: Seconds between the key units joins may force on one group.
JOIN_INTERVAL = 1.0
#: Seconds a member that fell behind keeps a group of its own before it may join again.
REJOIN_AFTER = 5.0
#: The frame rate a group's encoder is told once the group encodes at least FAST_ENTER
#: frames a second (a 60 fps source), and the count at or below which it is told FRAME_RATE
#: again (the gap between the two keeps a source near either from flapping) ...
FAST_RATE = 60
FAST_ENTER = 48
FAST_LEAVE = 40
#: ... never within this many seconds of the encoder's first unit (a change costs a key unit,
#: and the count needs a second of the encoder's frames).
RATE_SETTLE = 1.0


class FrameEncoder(Protocol):
    """One x264 stream (:class:`~rdesk.host.video.encoder.H264Encoder`)."""

    def encode(self, frame: np.ndarray, rect: tuple[int, int, int, int], key: bool
               ) -> tuple[bytes, bool]: ...


class EncoderFactory(Protocol):
    """Makes a group's encoder: ``(w, h)``, bits a second, and the frames a second its rate
    control budgets for (the class :class:`~rdesk.host.video.encoder.H264Encoder` is one)."""

    def __call__(self, size: tuple[int, int], bitrate: int, *, fps: int) -> FrameEncoder: ...


@dataclasses.dataclass
class Group:
    """One region at one bitrate, and what each member has of its units."""

    gid: int
    rect: Box
    bitrate: int
    #: member -> index of the next unit it needs.
    members: dict[int, int] = dataclasses.field(default_factory=dict)
    #: The last :data:`JOIN_BACKLOG` units: (index, access unit, key).
    units: collections.deque[tuple[int, bytes, bool]] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=JOIN_BACKLOG))
    #: Index the next unit encoded gets, and the last key unit's (-1: none yet).
    next_index: int = 0
    key_index: int = -1
    last_key: float = -1e9
    want_key: bool = True
    #: The frame rate its encoder is (to be) told, when that encoder's first unit was
    #: encoded (``None``: not yet), and the times of its recent units.
    rate: int = FRAME_RATE
    started: float | None = None
    encoded: collections.deque[float] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=FAST_RATE + 4))

    def fits(self, rect: Box, bitrate: int) -> bool:
        return rect == self.rect and max(bitrate, self.bitrate) <= SHARE_RATIO * min(
            bitrate, self.bitrate)

    def key_kept(self) -> bool:
        """Whether the last key unit and every unit after it are still kept."""
        return self.key_index >= 0 and self.next_index - self.key_index <= JOIN_BACKLOG


@dataclasses.dataclass(frozen=True)
class Step:
    """What a member's request needs: whether ``group`` must encode a unit first, and if so
    whether it must be a key unit."""

    group: Group
    encode: bool
    key: bool


class Groups:
    """The sharing decisions for one screen; see the module docstring. Pure: no clock, no
    encoder, not thread-safe (:class:`SharedEncoders` locks around it)."""

    def __init__(self) -> None:
        self.groups: dict[int, Group] = {}
        self._of: dict[int, Group] = {}
        self._hold: dict[int, float] = {}
        self._gids = itertools.count()

    def settle(self, member: int, rect: Box, bitrate: int, key: bool, now: float) -> Group:
        """Place ``member`` (its stream's ``rect``, at ``bitrate``; ``key``: its viewer asked
        for a key unit) for this round: the group it takes its units from."""
        group = self._of.get(member)
        if group is None or not group.fits(rect, bitrate):
            group = self._place(member, rect, bitrate, now)
        elif group.next_index - group.members[member] > MAX_BEHIND:
            self._hold[member] = now + REJOIN_AFTER  # too slow for the group: one of its own
            group = self._move(member, self._new(rect, bitrate), now)
        elif len(group.members) == 1:  # a group of one looks for company
            other = self._joinable(rect, bitrate, now, member, better_than=group)
            if other is not None:
                group = self._move(member, other, now)
        if key and not self._starts_at_key(member, group):
            group.want_key = True  # (a member about to take a key unit needs no other)
        return group

    @staticmethod
    def _starts_at_key(member: int, group: Group) -> bool:
        """Whether the first unit ``member`` will take is a key unit (or the group's first)."""
        start = group.members[member]
        return start == group.key_index or (start == 0 and group.next_index == 0) or (
            start == group.next_index and group.want_key)

    def due(self, member: int) -> Step:
        """Whether ``member``'s group must encode before it takes its units: only when it
        already has the group's latest unit (or the group has none)."""
        group = self._of[member]
        caught_up = group.members[member] == group.next_index
        return Step(group, caught_up, caught_up and (group.want_key or group.next_index == 0))

    def record(self, group: Group, unit: bytes, key: bool, now: float) -> None:
        """``group`` encoded ``unit`` (a key unit when ``key``)."""
        if group.started is None:
            group.started = now
        group.encoded.append(now)
        group.units.append((group.next_index, unit, key))
        if key:
            group.key_index, group.last_key, group.want_key = group.next_index, now, False
        group.next_index += 1

    @staticmethod
    def rerate(group: Group, now: float) -> bool:
        """Before ``group`` encodes at ``now``: whether its encoder must be replaced by one
        told another frame rate (then :attr:`Group.rate` is that rate, and the next unit
        starts the new encoder's count)."""
        if group.started is None or now - group.started < RATE_SETTLE:
            return False
        recent = sum(1 for t in group.encoded if t > now - 1.0)
        if group.rate != FAST_RATE and recent >= FAST_ENTER:
            group.rate = FAST_RATE
        elif group.rate == FAST_RATE and recent <= FAST_LEAVE:
            group.rate = FRAME_RATE
        else:
            return False
        group.started = None
        group.encoded.clear()
        return True

    def take(self, member: int) -> list[tuple[bytes, bool]]:
        """The units ``member`` lacks, oldest first; it has them all afterwards."""
        group = self._of.get(member)
        if group is None:
            return []
        start = group.members[member]
        group.members[member] = group.next_index
        return [(unit, key) for index, unit, key in group.units if index >= start]

    def leave(self, member: int) -> Group | None:
        """``member`` is gone; its group if that is now empty (its encoder can go)."""
        self._hold.pop(member, None)
        group = self._of.pop(member, None)
        if group is None:
            return None
        del group.members[member]
        if group.members:
            return None
        del self.groups[group.gid]
        return group

    def _place(self, member: int, rect: Box, bitrate: int, now: float) -> Group:
        target = self._joinable(rect, bitrate, now, member, better_than=None)
        return self._move(member, target or self._new(rect, bitrate), now)

    def _new(self, rect: Box, bitrate: int) -> Group:
        group = Group(next(self._gids), rect, bitrate)
        self.groups[group.gid] = group
        return group

    def _joinable(self, rect: Box, bitrate: int, now: float, member: int,
                  better_than: Group | None) -> Group | None:
        """The largest (then oldest) group ``member`` may join now, if any; with
        ``better_than``, only one larger than it or as large and older."""
        if now < self._hold.get(member, -1e9):
            return None
        best = None
        for group in self.groups.values():
            if group is better_than or member in group.members or not group.fits(rect, bitrate):
                continue
            if better_than is not None and (len(group.members), -group.gid) <= (
                    len(better_than.members), -better_than.gid):
                continue
            if not (group.want_key or group.key_kept()) and now - group.last_key < JOIN_INTERVAL:
                continue  # it may not be given another key unit yet
            if best is None or (len(group.members), -group.gid) > (len(best.members), -best.gid):
                best = group
        return best

    def _move(self, member: int, group: Group, now: float) -> Group:
        old = self._of.get(member)
        if old is not group:
            hold = self._hold.get(member)
            self.leave(member)
            if hold is not None:
                self._hold[member] = hold
            self._of[member] = group
            if group.key_kept():  # from its last key unit on
                group.members[member] = group.key_index
            else:  # before its first unit, or a key unit for the joiner
                group.members[member] = group.next_index
                group.want_key = group.want_key or group.next_index > 0
        return group


class SharedEncoders:
    """The groups of one screen and their encoders, for the viewers' encoding threads.

    :param make_encoder: ``make_encoder((w, h), bitrate, fps=rate)``, a group's encoder.
    :param clock: seconds, for the join and rejoin intervals and the groups' frame rates.
    """

    def __init__(self, make_encoder: EncoderFactory,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._make_encoder = make_encoder
        self._clock = clock
        self._groups = Groups()
        self._encoders: dict[int, FrameEncoder] = {}
        #: One lock per group's encoder (x264 takes one thread at a time); ``_lock`` guards
        #: the groups and is never held while encoding.
        self._encoding: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        #: Frames encoded over all groups, for statistics and tests.
        self.encodes = 0

    def member(self, size: tuple[int, int], bitrate: int) -> Member:
        """A stream's handle (what :class:`~rdesk.host.video.streams.VideoStreams` takes as
        its encoder)."""
        return Member(self, next(self._ids), size, bitrate)

    @property
    def groups(self) -> int:
        with self._lock:
            return len(self._groups.groups)

    @property
    def members(self) -> int:
        """Streams in a group now (all viewers)."""
        with self._lock:
            return sum(len(g.members) for g in self._groups.groups.values())

    def units(self, member: Member, frame: np.ndarray, rect: Box, key: bool
              ) -> list[tuple[bytes, bool]]:
        with self._lock:
            if member.closed:
                return []
            gid = self._groups.settle(member.mid, rect, member.bitrate, key, self._clock()).gid
            lock = self._encoding.setdefault(gid, threading.Lock())
        with lock:
            with self._lock:  # (another member may have encoded meanwhile)
                if member.closed:
                    return []  # closed meanwhile: nothing this round
                step = self._groups.due(member.mid)
                encoder = self._encoders.get(gid)
                if step.encode and self._groups.rerate(step.group, self._clock()):
                    encoder = None  # its first unit is a key unit for every member
            if step.encode:
                if encoder is None:
                    encoder = self._make_encoder(rect[2:], step.group.bitrate,
                                                 fps=step.group.rate)
                unit, is_key = encoder.encode(frame, rect, step.key)
                with self._lock:
                    self._encoders[gid] = encoder
                    self.encodes += 1
                    if unit and gid in self._groups.groups:
                        self._groups.record(step.group, unit, is_key, self._clock())
            with self._lock:
                return self._groups.take(member.mid)

    def close(self, member: Member) -> None:
        with self._lock:
            member.closed = True
            empty = self._groups.leave(member.mid)
            if empty is not None:
                self._encoders.pop(empty.gid, None)
                self._encoding.pop(empty.gid, None)


class Member:
    """One viewer's stream in a group: its encoder as far as the stream can tell."""

    def __init__(self, hub: SharedEncoders, mid: int, size: tuple[int, int], bitrate: int
                 ) -> None:
        self._hub = hub
        self.mid = mid
        self.size = size
        self.bitrate = bitrate
        self.closed = False

    def units(self, frame: np.ndarray, rect: Box, key: bool) -> list[tuple[bytes, bool]]:
        """The access units to send for ``rect`` of ``frame`` this round, oldest first, each
        with whether it is a key unit (``key``: the viewer needs one; blocking)."""
        return self._hub.units(self, frame, rect, key)

    def close(self) -> None:
        """The stream ended or restarted: leave the group."""
        self._hub.close(self)
