"""The host's model of a viewer's picture against a real viewer framebuffer (issue 16).

Random sequences of typing, scrolls, lossy and lossless rounds, budget cuts and changes made
while a round encodes are sent the way ViewerLink sends them (scroll check first, then a
round), encoded by the real encoders and applied to the real client Framebuffer (real JPEG
decoding, real COPY). After every update: every tile the host holds as exact is exactly what
it sent, so no COPY ever reads pixels the host does not know the viewer has (a COPY from an
unknown tile raises in Held.scrolled); once the screen stops, the viewer ends pixel-exact.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.client.framebuffer import Framebuffer
from rdesk.host.encoding.encode import EncodeCache, EncodedRect
from rdesk.host.encoding.parallel import encode_round
from rdesk.host.encoding.planner import Planner
from rdesk.host.encoding.scrolls import plan_scroll
from rdesk.host.encoding.tiles import dirty_tiles
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.updates import Rect, Update

TILE = 16
W, H = 8 * TILE, 8 * TILE
SHAPE = (H // TILE, W // TILE)
DOC_ROWS = 1200


def document(seed: int, inks: int = 0) -> np.ndarray:
    """A tall BGRA page of text-like lines: random glyph bitmaps in dark inks on paper; with
    ``inks``, that many inks, one per glyph (a terminal's text: flat, so its lossy jobs are
    encoded exactly), else a random ink per pixel (many colours: JPEG)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 120, (max(inks, 1), 3), dtype=np.uint8)
    doc = np.full((DOC_ROWS, W, 4), 235, dtype=np.uint8)
    for top in range(2, DOC_ROWS - 10, 11):
        for left in range(2, W - 6, 6):
            if rng.random() < 0.6:  # a glyph: a random 4x8 bitmap
                bits = rng.random((8, 4)) < 0.5
                ink = (palette[rng.integers(inks)] if inks
                       else rng.integers(0, 120, (int(bits.sum()), 3), dtype=np.uint8))
                doc[top : top + 8, left : left + 4, :3][bits] = ink
    return doc


class Viewer:
    """The sender's side of one viewer, as ViewerLink drives it, and the real framebuffer."""

    def __init__(self) -> None:
        self.planner = Planner(SHAPE, TILE, (W, H), lossless_delay=0.12)
        self.fb = Framebuffer(W, H)
        self.cache = EncodeCache()
        self.frame_id = 0
        self.seq = 0
        self.copies = 0

    def send(self, rects: list[EncodedRect], exact: bool) -> None:
        update = Update(self.seq, 0, tuple(Rect(e.x, e.y, e.w, e.h, e.encoding, e.payload)
                                           for e in rects), exact=exact)
        self.seq += 1
        self.copies += sum(e.encoding is Encoding.COPY for e in rects)
        self.fb.apply(update)
        self.check()

    def check(self) -> None:
        """Every tile held as exact shows exactly what was sent there."""
        held = self.planner.held
        if held.sent is None:
            return
        shown = np.asarray(self.fb.image)
        sent = held.sent[..., 2::-1]  # BGRA -> RGB
        exact = held.known & ~held.lossy
        for r, c in zip(*np.nonzero(exact), strict=True):
            rows = slice(r * TILE, (r + 1) * TILE)
            cols = slice(c * TILE, (c + 1) * TILE)
            assert np.array_equal(shown[rows, cols], sent[rows, cols]), (r, c)

    def round(self, frame: np.ndarray, now: float, last_change: np.ndarray,
              moving: np.ndarray, budget: int, carry: float, scale: float,
              meanwhile: np.ndarray | None = None) -> bool:
        """One round, as ViewerLink._send_pending; ``meanwhile`` is marked while it encodes.
        Whether anything was sent."""
        p = self.planner
        self.frame_id += 1
        # As ViewerLink encodes: lossy jobs of flat content come out exact.
        encode = {"quality": 40, "scale": scale, "exact_if_flat": True}
        region = p.scroll_region(frame)
        if region is not None and p.held.sent is not None:
            taken = p.take_dirty()
            plan = plan_scroll(p.held.sent, frame, region, TILE)
            if plan is None:
                p.give_back(taken)
                p.scroll_missed()
            else:
                scroll = p.scroll(plan, carry, budget)
                encoded = encode_round(self.cache, frame, self.frame_id, scroll.jobs, **encode)
                if meanwhile is not None:
                    p.mark(meanwhile)
                exact = p.settle_scroll(scroll, encoded, frame)
                self.send([scroll.copy, *encoded], exact)
                return True
        round_ = p.take_round(now, last_change, moving, budget)
        if round_ is None:
            if meanwhile is not None:  # the screen changed all the same
                p.mark(meanwhile)
            return False
        encoded = encode_round(self.cache, frame, self.frame_id, round_.jobs,
                               base=p.held.sent, trim=round_.trim, **encode)
        if meanwhile is not None:
            p.mark(meanwhile)
        kept, exact = p.settle(round_, encoded, frame)
        if kept:
            self.send(kept, exact)
        return True


step = st.one_of(
    st.tuples(st.just("scroll"), st.integers(1, 40)),
    st.tuples(st.just("type"), st.integers(0, H - 8), st.integers(0, W - 6),
              st.integers(0, 255)),
    st.tuples(st.just("round"), st.sampled_from([1500, 40_000, 1 << 30]), st.booleans(),
              st.sampled_from([1.0, 1e9]), st.sampled_from([1.0, 0.5]), st.booleans()),
)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1000), st.sampled_from([0, 3]), st.lists(step, min_size=1, max_size=40))
def test_copies_never_read_unknown_pixels_and_the_viewer_ends_exact(seed: int, inks: int,
                                                                    steps: list) -> None:
    doc = document(seed, inks)
    offset = 0
    frame = doc[:H].copy()
    viewer = Viewer()
    p = viewer.planner
    p.mark(np.ones(SHAPE, dtype=bool))  # a new viewer owes the whole screen
    now = 0.0
    last_change = np.zeros(SHAPE)
    changed_last = np.zeros(SHAPE, dtype=bool)
    pending: np.ndarray | None = None  # a change the next round sees while it encodes
    for action in steps:
        now += 0.05
        if action[0] == "round":
            _, budget, lossy, carry, scale, concurrent = action
            moving = p.dirty.copy() if lossy else np.zeros(SHAPE, dtype=bool)
            meanwhile = None
            if concurrent:
                # The screen scrolls one line while the round encodes the frame before.
                offset = min(offset + 11, DOC_ROWS - H)
                after = doc[offset : offset + H].copy()
                meanwhile = dirty_tiles(frame, after, TILE)
            viewer.round(frame, now, last_change, moving, budget, carry, scale, meanwhile)
            if meanwhile is not None:
                frame = after
                last_change[meanwhile] = now
            continue
        if action[0] == "scroll":
            offset = min(offset + action[1], DOC_ROWS - H)
            new = doc[offset : offset + H].copy()
        else:
            _, y, x, ink = action
            doc[offset + y : offset + y + 8, x : x + 4, :3] = ink
            new = doc[offset : offset + H].copy()
        changed = dirty_tiles(frame, new, TILE)
        p.mark(changed)
        last_change[changed] = now
        changed_last = changed
        frame = new
    del changed_last, pending
    # The screen stops: every round is long after the last change.
    for _ in range(300):
        now += 1.0
        if not viewer.round(frame, now, last_change, np.zeros(SHAPE, dtype=bool), 40_000,
                            1e9, 1.0):
            break
    assert p.exact and viewer.fb.exact
    assert np.array_equal(np.asarray(viewer.fb.image), frame[..., 2::-1])


def test_a_scroll_of_a_lossy_picture_is_sent_as_a_copy_and_ends_exact() -> None:
    doc = document(3)
    viewer = Viewer()
    p = viewer.planner
    frame = doc[:H].copy()
    p.mark(np.ones(SHAPE, dtype=bool))
    everything = np.ones(SHAPE, dtype=bool)
    viewer.round(frame, 0.0, np.zeros(SHAPE), everything, 1 << 30, 1e9, 1.0)
    assert p.lossy.all()  # moving: all of it went lossy
    last_change = np.zeros(SHAPE)
    for i in range(1, 6):  # five lines scroll while the picture is lossy
        new = doc[11 * i : 11 * i + H].copy()
        p.mark(dirty_tiles(frame, new, TILE))
        frame = new
        last_change[:] = 0.05 * i
        assert viewer.round(frame, 0.05 * i, last_change, everything, 1 << 30, 1e9, 1.0)
    assert viewer.copies == 5
    for _ in range(10):
        if not viewer.round(frame, 10.0, last_change, np.zeros(SHAPE, dtype=bool), 1 << 30,
                            1e9, 1.0):
            break
    assert p.exact and np.array_equal(np.asarray(viewer.fb.image), frame[..., 2::-1])
