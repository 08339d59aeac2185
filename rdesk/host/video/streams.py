"""One viewer's video streams: which regions are video, at what bitrate, when a key unit goes.

:class:`VideoStreams` is fed the screen's change events (:meth:`VideoStreams.changed`) and asked
once per round (:meth:`VideoStreams.plan`) what to send: the ``video_end`` of streams whose
region stopped, and a :class:`VideoJob` per live region whose tiles changed or that needs a key
unit. :meth:`VideoStreams.encode` then runs the jobs (blocking: call it off the event loop).
Planning is pure and takes ``now``; encoding holds the encoders, one per stream, made by
``make_encoder`` (in the host a member of a group of :mod:`rdesk.host.video.shared`, which
viewers watching the same region at similar rates share; a fake in unit tests).

Bitrate follows the link and the viewer's bandwidth controller (docs/adaptation.md): the
target is the controller's level times a ceiling of :data:`BITS_PER_PIXEL` per pixel per frame
at 30 fps (capped by the viewer's bandwidth cap), never below a floor, and never above
:data:`LINK_SHARE` of the link rate measured from large updates (the rest is left for tiles and
input; on a link slower than the floor, the link wins) nor below :data:`LEVEL_SPAN` of that
share (the level's delay signal also reads a slow viewer as queue). x264's zero-latency rate control
budgets each frame as a thirtieth of the rate (a group encoding a 60 fps source is told 60:
rdesk/host/video/shared.py), and video rounds are paced at 30 a second at least
(:data:`FRAME_RATE`), so frames stay small and frequent; a stream whose rounds come less often
simply uses less than its rate (scaling the rate up by 30 over the measured frame rate made
fewer, bigger frames and key units, which slowed the rounds further: a vicious circle at low
rates). As the encoder's rate is fixed for its life, a stream is restarted (new encoder, key
unit) only when the target falls below 1/:data:`DOWN_RATIO` of its rate, or, at most every
:data:`UP_AFTER` seconds, rises beyond :data:`UP_RATIO` times it: a key unit costs several
frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import numpy as np

from rdesk.host.encoding.encode import EncodedRect
from rdesk.host.video.regions import Box, Region, RegionDetector
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.video import KEYFRAME_INTERVAL, pack_header

__all__ = [
    "BECOMING_SHARE",
    "BITS_PER_PIXEL",
    "FRAME_RATE",
    "ROUND_RATE",
    "LINK_SHARE",
    "MIN_BITRATE",
    "Encoder",
    "VideoJob",
    "VideoPlan",
    "VideoStreams",
    "target_bitrate",
]

#: Ceiling of a stream's bitrate, bits per pixel per frame (1080p at 30 fps: 7.5 Mbit/s).
BITS_PER_PIXEL = 0.12
#: No stream goes below this many bits per second ...
MIN_BITRATE = 200_000
#: ... nor below this many bits per pixel per frame at 30 fps (1080p: 1.2 Mbit/s): JPEG's
#: floor (quality 30 at 1/4 scale) is about 25 kB a 1080p update at 24.5 dB, and a stream
#: restarted lower than this began with a key unit of 22 kB and stayed near 12 dB.
FLOOR_BITS_PER_PIXEL = 0.02
#: A stream takes at most this share of the link's measured rate (tiles and input the rest).
LINK_SHARE = 0.75
#: ... and at least this fraction of that share, whatever the level (within the ceiling).
LEVEL_SPAN = 0.4
#: Restart a stream lower once the target is below its rate / DOWN_RATIO (a restart's key
#: unit costs several frames: only for a deep cut; the byte window paces the rest) ...
DOWN_RATIO = 2.5
#: ... or higher once it is above UP_RATIO x its rate, and UP_AFTER s since its last start.
UP_RATIO = 2.0
UP_AFTER = 3.0
#: A change over at least this share of the screen that may be becoming video holds the
#: picture at the controller's start cap until its stream starts (:meth:`VideoStreams.becoming`).
BECOMING_SHARE = 1 / 8
#: While a region lives, it is checked for its end at least this often (seconds).
CHECK_INTERVAL = 0.1
#: Video rounds a second (the encoder's nominal rate: each frame gets 1/FRAME_RATE of the rate).
FRAME_RATE = 30
#: The least rate of the slots a video round may take (rounds a second, whatever the level):
#: a tenth above :data:`FRAME_RATE`. Rounds still come only with new frames, so a 30 fps
#: source gets about 30; but slots at exactly 30 a second give a round that started late (the
#: encode of the last one overran, the grab was delayed by the viewer's or the generator's CPU)
#: no room to catch up within the frame interval, and the next frame waits for the slot after:
#: a 30.1 fps source with 0-8 ms of capture jitter and 10-30 ms rounds lost 0.3 % of its
#: frames at 30, none at 33 (tests/host/test_video_regions.py). A source above 30 fps at a low
#: level gets up to 10 % more frames than x264 budgets (each frame is a 30th of the rate).
ROUND_RATE = FRAME_RATE * 1.1


class Encoder(Protocol):
    """What a stream needs of its encoder (:class:`~rdesk.host.video.shared.Member`)."""

    size: tuple[int, int]
    bitrate: int

    def units(self, frame: np.ndarray, rect: tuple[int, int, int, int], key: bool
              ) -> list[tuple[bytes, bool]]:
        """This round's access units, oldest first, each with whether it is a key unit."""
        ...

    def close(self) -> None:
        """The stream ended or restarted."""
        ...


def target_bitrate(level: float, area: int, cap_bps: float | None,
                   link_bps: float | None = None) -> int:
    """The bits per second a stream of ``area`` pixels should use at controller ``level``,
    on a link measured at ``link_bps`` (``None``: not measured yet)."""
    ceiling = BITS_PER_PIXEL * area * FRAME_RATE
    if cap_bps:
        ceiling = min(ceiling, 0.8 * cap_bps)
    floor = max(MIN_BITRATE, FLOOR_BITS_PER_PIXEL * area * FRAME_RATE)
    target = max(floor, level * ceiling)
    if link_bps:
        share = LINK_SHARE * link_bps
        # The level moves the rate within the upper part of the link's share only: its delay
        # signal also reads a slow viewer (decode and paint are in every round trip) as queue,
        # and fewer bits a frame do not make a viewer decode faster (the acks already give it
        # fewer frames); at level 0 a 10 Mbit/s link gave 1.2 Mbit/s of video and 29.7 dB.
        target = max(target, min(ceiling, LEVEL_SPAN * share))
        # The link wins over the floor: more than it carries only builds a queue.
        target = min(target, max(MIN_BITRATE, share))
    return int(target)


@dataclasses.dataclass(frozen=True)
class VideoJob:
    """Encode ``rect`` of the round's frame on ``stream``; ``bitrate`` set: a new encoder."""

    stream: int
    rect: Box
    key: bool
    bitrate: int | None


@dataclasses.dataclass(frozen=True)
class VideoPlan:
    """One round's video work: streams to end (``video_end`` first), frames to encode, and the
    tiles the frames repaint (no tile encodes them)."""

    ended: list[int]
    jobs: list[VideoJob]
    repaint: np.ndarray


class VideoStreams:
    """The video state of one viewer; see the module docstring.

    :param size: the screen's (width, height).
    :param tile: tile side in pixels.
    :param make_encoder: ``make_encoder((w, h), bitrate)``.
    """

    def __init__(self, size: tuple[int, int], tile: int,
                 make_encoder: Callable[[tuple[int, int], int], Encoder]) -> None:
        self.detector = RegionDetector(size, tile)
        self._make_encoder = make_encoder
        self._encoders: dict[int, Encoder] = {}
        #: When each stream's encoder was (re)started, and at what rate.
        self._started: dict[int, tuple[float, int]] = {}
        self._want_key: set[int] = set()
        self._last_key: dict[int, float] = {}
        #: Key units and frames encoded, for statistics and tests.
        self.frames = 0
        self.keys = 0

    @property
    def active(self) -> bool:
        return bool(self.detector.regions)

    def changed(self, now: float, mask: np.ndarray) -> None:
        self.detector.changed(now, mask)

    def becoming(self, now: float) -> bool:
        """Whether a large change (:data:`BECOMING_SHARE` of the screen or more) may be
        becoming video: its tiles are moving in a young streak outside any live region.

        While it is, the round's tiles are drawn small (the controller's start cap): a stream
        replaces them a few rounds later anyway, and a full-quality JPEG of a 1080p photo (374
        kB, 0.3 s of a 10 Mbit/s link) held the pan's first second to a few updates and broke
        the very streak that starts the stream (the next change came after FAST_GAP).
        """
        return self.detector.becoming(now) >= BECOMING_SHARE

    def next_check(self, now: float) -> float | None:
        """Seconds until the regions should be looked at again, if any lives."""
        return CHECK_INTERVAL if self.detector.regions else None

    def request_key(self, stream: int, now: float) -> bool:
        """The viewer asked for a key unit on ``stream``: granted at most once per
        :data:`KEYFRAME_INTERVAL`, and only for a live stream."""
        if stream not in self.detector.regions:
            return False
        if now - self._last_key.get(stream, -1e9) < KEYFRAME_INTERVAL:
            return False
        self._last_key[stream] = now
        self._want_key.add(stream)
        return True

    def stop(self) -> list[int]:
        """End every stream (the viewer no longer takes video); the streams to end."""
        ended = sorted(self.detector.regions)
        self.detector.regions.clear()
        self._close(*self._encoders)
        self._started.clear()
        return ended

    def plan(self, now: float, dirty: np.ndarray, *, level: float, cap_bps: float | None,
             link_bps: float | None, accept: Callable[[Box], bool]) -> VideoPlan:
        """This round's video work. ``dirty``: the tiles changed since they were last sent;
        ``link_bps``: the link rate measured (bits/s), which the streams' rates stay under."""
        _, _, ended = self.detector.update(now, accept)
        self._close(*ended)
        for stream in ended:
            self._started.pop(stream, None)
            self._want_key.discard(stream)
        jobs = []
        repaint = np.zeros_like(dirty, dtype=bool)
        for stream, region in sorted(self.detector.regions.items()):
            bitrate = self._restart_rate(stream, region, now, level, cap_bps, link_bps)
            mask = self.detector.region_mask(region)
            key = stream in self._want_key or bitrate is not None
            if not key and not (dirty & mask).any():
                continue  # nothing moved in it since its last frame
            self._want_key.discard(stream)
            if bitrate is not None:
                self._started[stream] = (now, bitrate)
            jobs.append(VideoJob(stream, region.rect, key, bitrate))
            repaint |= mask
        return VideoPlan(ended, jobs, repaint)

    def _restart_rate(self, stream: int, region: Region, now: float, level: float,
                      cap_bps: float | None, link_bps: float | None) -> int | None:
        """The bitrate of a new encoder for ``stream``, or ``None`` to keep its encoder."""
        area = region.rect[2] * region.rect[3]
        target = target_bitrate(level, area, cap_bps, link_bps)
        encoder = self._encoders.get(stream)
        if encoder is None or encoder.size != region.rect[2:]:
            return target
        since, rate = self._started[stream]
        if target < rate / DOWN_RATIO:
            return target
        if target > rate * UP_RATIO and now - since >= UP_AFTER:
            return target
        return None

    def encode(self, frame: np.ndarray, jobs: list[VideoJob]) -> list[EncodedRect]:
        """Run ``jobs`` on ``frame`` (blocking; one call at a time per viewer)."""
        out = []
        for job in jobs:
            x, y, w, h = job.rect
            if job.bitrate is not None:
                self._close(job.stream)
                self._encoders[job.stream] = self._make_encoder((w, h), job.bitrate)
            encoder = self._encoders.get(job.stream)
            if encoder is None:
                continue  # the stream was stopped meanwhile
            for unit, key in encoder.units(frame, job.rect, job.key):
                self.frames += 1
                self.keys += key
                payload = pack_header(job.stream, key) + unit
                out.append(EncodedRect(x, y, w, h, Encoding.H264, payload, exact=False))
        return out

    def _close(self, *streams: int) -> None:
        for stream in list(streams):
            encoder = self._encoders.pop(stream, None)
            if encoder is not None:
                encoder.close()


