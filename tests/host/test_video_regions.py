"""Video-region detection (pure, fake clock): what becomes a region, when it grows, when it
ends; and the per-viewer stream plan over a fake encoder: key units, bitrate, rate limits."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.host.video.regions import (
    BECOMING_STREAK,
    END_AFTER,
    FAST_GAP,
    FAST_STREAK,
    MIN_CHANGES,
    RegionDetector,
    components,
)
from rdesk.host.video.streams import (
    BECOMING_SHARE,
    DOWN_RATIO,
    FLOOR_BITS_PER_PIXEL,
    FRAME_RATE,
    LINK_SHARE,
    MIN_BITRATE,
    ROUND_RATE,
    UP_AFTER,
    VideoStreams,
    target_bitrate,
)
from rdesk.protocol.controller import STARTING_LEVEL, Caps, Controller
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.video import KEYFRAME_INTERVAL, unpack_header

TILE = 64
SIZE = (1280, 720)  # 12 x 20 tiles
SHAPE = (12, 20)
FPS = 30


def box_mask(r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


def feed(det: RegionDetector | VideoStreams, mask: np.ndarray, start: float, seconds: float,
         fps: float = FPS) -> float:
    """``mask`` changes ``fps`` times a second for ``seconds``; the time after."""
    t = start
    for i in range(int(seconds * fps)):
        t = start + i / fps
        det.changed(t, mask)
    return t


def yes(_: object) -> bool:
    return True


def test_components_are_4_connected() -> None:
    hot = np.zeros((5, 5), dtype=bool)
    hot[0, 0] = hot[0, 1] = hot[1, 1] = True  # one group
    hot[2, 2] = True  # diagonal only: another
    hot[4, 0:5] = True
    assert sorted(components(hot)) == [(0, 0, 1, 1), (2, 2, 2, 2), (4, 0, 4, 4)]


def _flood_components(hot: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The reference: a flood fill from every tile, in row-major order of first tiles."""
    seen = np.zeros_like(hot)
    boxes = []
    for r, c in zip(*np.nonzero(hot), strict=True):
        if seen[r, c]:
            continue
        stack, group = [(r, c)], []
        seen[r, c] = True
        while stack:
            y, x = stack.pop()
            group.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if (0 <= ny < hot.shape[0] and 0 <= nx < hot.shape[1] and hot[ny, nx]
                        and not seen[ny, nx]):
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        ys, xs = zip(*group, strict=True)
        boxes.append((int(min(ys)), int(min(xs)), int(max(ys)), int(max(xs))))
    return boxes


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_components_match_a_flood_fill(rows: int, cols: int, data: st.DataObject) -> None:
    cells = data.draw(st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols))
    hot = np.array(cells, dtype=bool).reshape(rows, cols)
    assert components(hot) == _flood_components(hot)


def test_continuous_motion_becomes_one_even_region() -> None:
    det = RegionDetector((1279, 719), TILE)  # odd screen: the edge is cut to even
    t = feed(det, box_mask(0, 10, 11, 19), 0.0, 1.0)
    started, grown, ended = det.update(t, yes)
    assert [r.rect for r in started] == [(640, 0, 638, 718)]
    assert (grown, ended) == ([], [])
    # The last row and column of tiles are only partly covered: they stay tiles.
    mask = det.mask()
    assert mask[:11, 10:19].all() and not mask[11].any() and not mask[:, 19].any()


def test_not_enough_motion_stays_tiles() -> None:
    det = RegionDetector(SIZE, TILE)
    # Typing-like: changes a few times a second, under MIN_CHANGES in the window.
    t = feed(det, box_mask(2, 2, 5, 8), 0.0, 2.0, fps=MIN_CHANGES - 3)
    assert det.update(t, yes) == ([], [], [])
    # A moving area of one tile a side is too small for video.
    det = RegionDetector(SIZE, TILE)
    t = feed(det, box_mask(2, 2, 2, 8), 0.0, 1.0)
    assert det.update(t, yes)[0] == []
    # Content the caller refuses (not photo-like: a scrolling terminal) stays tiles.
    det = RegionDetector(SIZE, TILE)
    t = feed(det, box_mask(0, 0, 11, 19), 0.0, 1.0)
    assert det.update(t, lambda rect: False)[0] == []


def test_a_quick_streak_starts_video_within_its_first_frames() -> None:
    assert FAST_STREAK + 1 < MIN_CHANGES  # (the count rule stays out of the cases below)
    moving = box_mask(0, 0, 11, 19)

    def frames(det: RegionDetector, count: int, start: float, gap: float = 1 / FPS) -> float:
        for i in range(count):
            det.changed(start + i * gap, moving)
        return start + (count - 1) * gap

    # A pan at 30 fps: hot once FAST_STREAK frames ran, long before MIN_CHANGES of them.
    det = RegionDetector(SIZE, TILE)
    t = frames(det, FAST_STREAK - 1, 0.0)  # one frame short
    assert det.update(t, yes) == ([], [], [])
    t = frames(det, 1, t + 1 / FPS)
    (region,), _, _ = det.update(t, yes)
    assert region.rect == (0, 0, 1280, 720)
    # The same frames at a slow rate (gaps over FAST_GAP) are no streak.
    det = RegionDetector(SIZE, TILE)
    t = frames(det, FAST_STREAK, 0.0, gap=FAST_GAP * 1.2)
    assert det.update(t, yes) == ([], [], [])
    # A streak that stopped counts no more (a burst of frames, then a still screen).
    det = RegionDetector(SIZE, TILE)
    t = frames(det, FAST_STREAK, 0.0)
    assert det.update(t + FAST_GAP * 1.1, yes) == ([], [], [])
    # A pause breaks the streak: the frames after it count from one again.
    det = RegionDetector(SIZE, TILE)
    t = frames(det, 1, 0.0)
    t = frames(det, FAST_STREAK - 1, t + FAST_GAP * 1.5)
    assert det.update(t, yes) == ([], [], [])
    t = frames(det, 1, t + 1 / FPS)
    assert len(det.update(t, yes)[0]) == 1


def test_a_large_change_becoming_video_is_held_small_until_its_stream_starts() -> None:
    """From a pan's first change until its stream starts, the picture is held at the start cap
    (the stream replaces those tiles a few rounds later); the cap lifts when the stream starts,
    when the motion stops, and when motion that does not become video ran past its streak."""
    moving = box_mask(0, 0, 11, 19)
    streams = VideoStreams(SIZE, TILE, lambda size, rate: FakeEncoder(size, rate))
    dirty = np.ones(SHAPE, dtype=bool)

    def plan(now: float) -> None:
        streams.plan(now, dirty, level=1.0, cap_bps=None, link_bps=10e6, accept=yes)

    assert not streams.becoming(0.0)
    t = 0.0
    for i in range(FAST_STREAK):
        t = i / FPS
        streams.changed(t, moving)
        plan(t)
        # Becoming from the first change (a pan's first round is as large as any) until the
        # round that starts the stream; then its tiles are the stream's.
        assert streams.becoming(t) == (i < FAST_STREAK - 1), i
    assert streams.active
    # Still for FAST_GAP: nothing is becoming video (the lossless refresh takes the tiles).
    still = RegionDetector(SIZE, TILE)
    still.changed(0.0, moving)
    assert still.becoming(0.0) == 1.0
    assert still.becoming(FAST_GAP * 1.1) == 0.0
    # Small changes (a caret, a clock) never hold the picture.
    small = VideoStreams(SIZE, TILE, lambda size, rate: FakeEncoder(size, rate))
    corner = box_mask(0, 0, 1, 1)
    assert corner.mean() < BECOMING_SHARE
    for i in range(3):
        small.changed(i / FPS, corner)
    assert not small.becoming(2 / FPS)
    # Motion refused as video (not photo-like): the cap lifts once its streak ran past.
    refused = VideoStreams(SIZE, TILE, lambda size, rate: FakeEncoder(size, rate))
    held = []
    for i in range(BECOMING_STREAK + 3):
        t = i / FPS
        refused.changed(t, moving)
        refused.plan(t, dirty, level=1.0, cap_bps=None, link_bps=10e6, accept=lambda _: False)
        held.append(refused.becoming(t))
    assert held == [True] * BECOMING_STREAK + [False] * 3
    assert not refused.active
    # The controller draws at most the start cap while starting; the stream that starts then
    # reads the level unheld (its key unit is bounded by the encoder's buffer instead).
    ctl = Controller(now=0.0)
    ctl.on_ack(0.1, 0.05, 40_000)
    assert ctl.picture_level == 1.0
    ctl.starting = True
    assert ctl.picture_level == STARTING_LEVEL
    assert ctl.stream_level == 1.0
    assert (ctl.scale, ctl.quality) == (0.5, 30)
    ctl.starting = False
    assert (ctl.scale, ctl.quality) == (1.0, 80)


def test_region_grows_never_flaps_and_ends_when_still() -> None:
    det = RegionDetector(SIZE, TILE)
    t = feed(det, box_mask(2, 2, 5, 5), 0.0, 1.0)
    (region,), _, _ = det.update(t, yes)
    # The moving area shrinks for a while: the region keeps its rectangle (no new key unit).
    t = feed(det, box_mask(3, 3, 4, 4), t, 1.0)
    assert det.update(t, yes) == ([], [], [])
    assert region.rect == (128, 128, 256, 256)
    # It grows: same stream, larger rectangle (a key unit follows).
    t = feed(det, box_mask(2, 2, 7, 9), t, 1.0)
    started, grown, _ = det.update(t, yes)
    assert started == [] and grown == [region] and region.rect == (128, 128, 512, 384)
    # Still for less than END_AFTER: it lives; beyond: it ends.
    assert det.update(t + END_AFTER * 0.9, yes) == ([], [], [])
    assert det.update(t + END_AFTER * 1.1, yes) == ([], [], [region.stream])
    assert det.regions == {}


def test_two_areas_two_streams_and_a_merge() -> None:
    det = RegionDetector(SIZE, TILE)
    both = box_mask(0, 0, 3, 3) | box_mask(6, 10, 9, 15)
    t = feed(det, both, 0.0, 1.0)
    started, _, _ = det.update(t, yes)
    assert sorted(r.stream for r in started) == [0, 1]
    # One moving area spanning both: they merge into one stream.
    t = feed(det, box_mask(0, 0, 9, 15), t, 1.0)
    _, grown, ended = det.update(t, yes)
    assert len(det.regions) == 1 and ended == [1] and grown[0].tiles == (0, 0, 9, 15)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11), st.integers(0, 19), st.integers(0, 11),
                          st.integers(0, 19), st.integers(1, 20)), min_size=1, max_size=6))
def test_reused_groups_and_masks_match_a_fresh_detector(moves: list[tuple[int, ...]]) -> None:
    """The groups of hot tiles and the tile masks kept from round to round never go stale:
    every round, regions and masks equal those of a detector given the same changes whose
    kept groups and masks are dropped before each round."""
    kept, plain = RegionDetector(SIZE, TILE), RegionDetector(SIZE, TILE)
    t = 0.0
    for r0, c0, r1, c1, frames in moves:
        area = box_mask(min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1))
        for _ in range(frames):
            t += 1 / FPS
            kept.changed(t, area)
            plain.changed(t, area)
            plain._grouped, plain._masks = (b"", []), {}
            got, want = kept.update(t, yes), plain.update(t, yes)
            assert [[r.rect for r in part] for part in got[:2]] == \
                [[r.rect for r in part] for part in want[:2]] and got[2] == want[2]
            plain._masks = {}
            assert np.array_equal(kept.mask(), plain.mask())
            assert not kept.mask().flags.writeable


class FakeEncoder:
    def __init__(self, size: tuple[int, int], bitrate: int) -> None:
        self.size, self.bitrate = size, bitrate
        self.calls: list[bool] = []

        self.closed = False

    def units(self, frame: np.ndarray, rect: tuple[int, int, int, int], key: bool
              ) -> list[tuple[bytes, bool]]:
        key = key or not self.calls
        self.calls.append(key)
        return [(b"\0\0\0\1unit", key)]

    def close(self) -> None:
        self.closed = True


def streams() -> tuple[VideoStreams, list[FakeEncoder]]:
    made: list[FakeEncoder] = []

    def make(size: tuple[int, int], bitrate: int) -> FakeEncoder:
        made.append(FakeEncoder(size, bitrate))
        return made[-1]

    return VideoStreams(SIZE, TILE, make), made


def plan(vs: VideoStreams, t: float, dirty: np.ndarray, level: float = 1.0,
         link: float | None = None) -> list:  # type: ignore[type-arg]
    return vs.plan(t, dirty, level=level, cap_bps=None, link_bps=link, accept=yes).jobs


def test_stream_plan_key_units_and_rects() -> None:
    vs, made = streams()
    moving = box_mask(0, 0, 5, 9)
    t = feed(vs, moving, 0.0, 1.0)
    jobs = plan(vs, t, moving, link=1e6)
    assert [(j.stream, j.rect, j.key) for j in jobs] == [(0, (0, 0, 640, 384), True)]
    assert jobs[0].bitrate == int(LINK_SHARE * 1e6)  # at most its share of the link
    rects = vs.encode(np.zeros((720, 1280, 4), np.uint8), jobs)
    assert rects[0].encoding is Encoding.H264 and not rects[0].exact
    header = unpack_header(rects[0].payload)
    assert header is not None and header.key and header.stream == 0
    # Nothing changed in it: no frame. A change: a non-key frame on the same encoder.
    assert plan(vs, t + 0.01, np.zeros(SHAPE, dtype=bool)) == []
    (job,) = plan(vs, t + 0.02, box_mask(1, 1, 1, 1))
    assert not job.key and job.bitrate is None
    vs.encode(np.zeros((720, 1280, 4), np.uint8), [job])
    assert made[0].calls == [True, False] and len(made) == 1


def test_keyframe_requests_are_rate_limited() -> None:
    vs, _ = streams()
    moving = box_mask(0, 0, 5, 9)
    t = feed(vs, moving, 0.0, 1.0)
    vs.encode(np.zeros((720, 1280, 4), np.uint8), plan(vs, t, moving))
    assert not vs.request_key(3, t)  # no such stream
    assert vs.request_key(0, t)
    assert not vs.request_key(0, t + KEYFRAME_INTERVAL / 2)
    (job,) = plan(vs, t, np.zeros(SHAPE, dtype=bool))  # a key unit even without change
    assert job.key and job.bitrate is None
    assert vs.request_key(0, t + KEYFRAME_INTERVAL)


def test_bitrate_follows_the_level_with_hysteresis() -> None:
    vs, made = streams()
    moving = box_mask(0, 0, 11, 19)
    t = feed(vs, moving, 0.0, 1.0)
    vs.encode(np.zeros((720, 1280, 4), np.uint8), plan(vs, t, moving, level=0.5))
    first = made[0].bitrate
    assert first == target_bitrate(0.5, 1280 * 720, None)
    # A small cut keeps the encoder; a deep one restarts it lower (with a key unit).
    t = feed(vs, moving, t, 0.2)
    (job,) = plan(vs, t, moving, level=0.5 / (DOWN_RATIO * 0.9))
    assert job.bitrate is None
    (job,) = plan(vs, t, moving, level=0.5 / (DOWN_RATIO * 1.2))
    assert job.key and job.bitrate is not None and job.bitrate < first / DOWN_RATIO
    vs.encode(np.zeros((720, 1280, 4), np.uint8), [job])
    assert made[0].closed and not made[1].closed  # the old encoder left (its shared group)
    # Up again only after UP_AFTER seconds.
    t = feed(vs, moving, t, 1.0)
    assert plan(vs, t, moving, level=1.0)[0].bitrate is None
    t = feed(vs, moving, t, UP_AFTER)
    assert plan(vs, t, moving, level=1.0)[0].bitrate == target_bitrate(1.0, 1280 * 720, None)
    assert vs.stop() == [0] and made[1].closed


def test_small_streams_floor_at_min_bitrate() -> None:
    assert target_bitrate(0.0, 128 * 128, None) == MIN_BITRATE
    assert FLOOR_BITS_PER_PIXEL * 128 * 128 * 30 < MIN_BITRATE
    # A fast link's share does not lift a small stream above its own ceiling.
    assert target_bitrate(0.0, 128 * 128, None, 100e6) == MIN_BITRATE


@pytest.mark.parametrize(("level", "cap", "link", "expected"), [
    (1.0, None, None, int(0.12 * 1920 * 1080 * 30)),
    (0.5, None, None, int(0.06 * 1920 * 1080 * 30)),
    (1.0, 2e6, None, int(1.6e6)),
    (0.0, None, None, int(0.02 * 1920 * 1080 * 30)),  # the floor, by area
    (1.0, None, 3e6, int(2.25e6)),  # 75 % of the link
    (0.0, None, 2e6, int(0.02 * 1920 * 1080 * 30)),  # the floor where the link carries it
    (0.0, None, 10e6, int(0.4 * 0.75 * 10e6)),  # whatever the level, 40 % of the link's share
    (1.0, None, 1e6, int(0.75e6)),  # the link wins over the floor
    (1.0, None, 1e5, MIN_BITRATE),
])
def test_target_bitrate(level: float, cap: float | None, link: float | None,
                        expected: int) -> None:
    assert target_bitrate(level, 1920 * 1080, cap, link) == pytest.approx(expected, abs=1)


def test_slow_rounds_keep_the_rate_and_the_link_bounds_it_always() -> None:
    """Rounds 5 times a second (a slow viewer) do not raise the encoder's rate (that made
    fewer, bigger frames and key units, and slower rounds still); a level climbing on a slow
    link does not take the stream past its share of the link, however long it runs."""
    vs, made = streams()
    moving = box_mask(0, 0, 11, 19)
    t = feed(vs, moving, 0.0, 1.0)
    vs.encode(np.zeros((720, 1280, 4), np.uint8), plan(vs, t, moving, level=0.5, link=2e6))
    assert made[0].bitrate == target_bitrate(0.5, 1280 * 720, None, 2e6)
    for i in range(1, 5 * int(2 * UP_AFTER)):
        vs.changed(t + i * 0.2, moving)
        for job in plan(vs, t + i * 0.2, moving, level=1.0, link=2e6):
            vs.encode(np.zeros((720, 1280, 4), np.uint8), [job])
    assert len(made) == 1 and made[0].bitrate <= LINK_SHARE * 2e6


def test_planner_gives_tiles_to_video_and_takes_them_back() -> None:
    from rdesk.host.encoding.planner import Planner

    planner = Planner(SHAPE, TILE, SIZE, lossless_delay=0.1)
    frame = np.zeros((720, 1280, 4), np.uint8)
    last_change = np.zeros(SHAPE)
    region = box_mask(0, 0, 5, 9)
    planner.mark(np.ones(SHAPE, dtype=bool))
    planner.give_to_video(region, region, frame)
    # The region's tiles went as video: not dirty, held lossy, and never refreshed while live.
    assert not planner.dirty[region].any() and planner.lossy[region].all()
    planner.dirty[:] = False
    assert planner.refresh_due_in(5.0, last_change) is None
    assert planner.take_round(5.0, last_change, np.zeros(SHAPE, dtype=bool), 10**9) is None
    assert not planner.exact
    # The stream ended: its tiles are lossy tiles like any other, refreshed once still.
    planner.give_to_video(np.zeros(SHAPE, dtype=bool), np.zeros(SHAPE, dtype=bool), frame)
    assert planner.refresh_due_in(5.0, last_change) == 0.0
    round_ = planner.take_round(5.0, last_change, np.zeros(SHAPE, dtype=bool), 10**9)
    assert round_ is not None and all(lossless for _, lossless in round_.jobs)


def _video_rounds(rate: float, seed: int) -> int:
    """Rounds a low-level controller lets 600 frames of a 30.1 fps source have, when each
    frame is grabbed 0-8 ms late and each round takes 10-30 ms, its slots at ``rate`` (the
    sender's loop: a round starts once the last one is done, a new frame is there and its slot
    has come, and takes the newest frame)."""
    rnd = random.Random(seed)
    ctl = Controller(Caps(80, 60.0, None), now=0.0, level=0.0)
    frames = [k / 30.1 + rnd.uniform(0.0, 0.008) for k in range(600)]
    busy_until, taken, rounds = 0.0, -1, 0
    while taken + 1 < len(frames):
        start = ctl.next_send_at(max(busy_until, frames[taken + 1]))
        while taken + 1 < len(frames) and frames[taken + 1] <= start:
            taken += 1
        ctl.on_round(start, rate)
        rounds += 1
        busy_until = start + rnd.uniform(0.010, 0.030)
    return rounds


@pytest.mark.parametrize("seed", range(4))
def test_video_slots_leave_room_for_a_late_round(seed: int) -> None:
    # Slots at exactly the frame rate merge a frame into the next round now and then; the
    # round rate's tenth of headroom gives every frame its own round.
    assert _video_rounds(FRAME_RATE, seed) < 600
    assert _video_rounds(ROUND_RATE, seed) == 600
