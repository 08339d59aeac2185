"""How bench_fidelity.py scores what the viewer shows against what the generator drew: the
sampling of the viewer's picture, PSNR, the rate from the first update, and which drawn frame
each update showed (so the frames a viewer was shown can be counted, and how late).

Pure functions of recorded data (stamps on this machine's monotonic clock, sampled pictures,
the generator's ``[stamp, offset]`` list); tests/test_bench_fidelity.py checks them.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
from PIL import Image

__all__ = ["CAPTURE_SLACK", "CAPTURE_WINDOW", "OFFSET", "STEP", "H", "W", "best_frame",
           "delivery", "fidelity", "psnr", "sample", "span"]

W, H = 1920, 1080
#: Sampling step of the fidelity score, in pixels (both axes) ...
STEP = 5
#: ... from this pixel of each step on: the pixel a 1/STEP nearest-neighbour resize picks.
OFFSET = STEP // 2
#: How far before an update's capture stamp a drawn frame may be the one it was cut from ...
CAPTURE_WINDOW = 0.2
#: ... and after it: the generator stamps a frame once the X server answered its sync, so the
#: host may grab it (and stamp its update) first. Without this slack, 6 of 118 samples of a run
#: scored 20.3-20.5 dB against the frame before, where the frame stamped 0.7-2.3 ms after the
#: update scored 36.4-36.5: the "p5 about 20 dB" of earlier sessions. Under a frame interval
#: (16.7 ms at 60 fps); a frame not yet drawn cannot match the viewer's picture better anyway.
CAPTURE_SLACK = 0.01


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two same-shaped uint8 images, in dB (inf if equal)."""
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def sample(image: Image.Image) -> np.ndarray:
    """Every :data:`STEP`-th pixel of every :data:`STEP`-th row of ``image``, from
    :data:`OFFSET` on, as an RGB array: ``np.asarray(image)[OFFSET::STEP, OFFSET::STEP]``
    (less a last partial step of a side that is not a multiple of STEP).

    One nearest-neighbour resize in Pillow, which picks the source pixel under each output
    pixel's centre, ``OFFSET + STEP * i``: 0.4 ms a 1080p frame, where converting the whole
    framebuffer to an array first took 2.3 ms of the viewer's CPU on every update, beside the
    host and the decoding it measures (docs/performance.md, "Issue 16, eighth session: CPU
    per video frame")."""
    columns, rows = image.size[0] // STEP, image.size[1] // STEP
    small = image.resize((columns, rows), Image.Resampling.NEAREST,
                         box=(0, 0, columns * STEP, rows * STEP))
    return np.asarray(small)


def span(times: list[float], t0: float, t1: float) -> tuple[float | None, float | None]:
    """(updates a second from the first update in [t0, t1] to the last, ms from t0 to the
    first); ``(None, None)`` with fewer than two. Over a fixed window, a link's latency alone
    keeps the count short: every frame delivered 100 ms late still leaves the first 100 ms
    empty (three frames of a 30 fps pan). This rate is the one the viewer gets once it gets any."""
    inside = [t for t in times if t0 <= t <= t1]
    if len(inside) < 2 or inside[-1] <= inside[0]:
        return None, None
    return (len(inside) - 1) / (inside[-1] - inside[0]), (inside[0] - t0) * 1000


def best_frame(stamp: float, shown: np.ndarray, frames: list[tuple[float, int]],
               picture: np.ndarray) -> tuple[int, float] | None:
    """(index into ``frames``, PSNR) of the drawn frame that ``shown`` (a :func:`sample` of
    the viewer's picture, from an update captured at ``stamp``) matches best, among those
    drawn from :data:`CAPTURE_WINDOW` before the stamp to :data:`CAPTURE_SLACK` after it
    (with the last one drawn before that window, the screen the host may still have held);
    ``None`` when ``frames`` is empty. ``picture`` is the panned picture, each frame the
    screen-wide cut of it at the frame's offset."""
    if not frames:
        return None
    times = np.array([t for t, _ in frames])
    lo, hi = np.searchsorted(times, [stamp - CAPTURE_WINDOW, stamp + CAPTURE_SLACK],
                             side="right")
    width = shown.shape[1] * STEP
    scored = [(psnr(shown, picture[OFFSET::STEP, frames[i][1] + OFFSET : frames[i][1] + width
                                   : STEP]), i)
              for i in range(max(0, lo - 1), max(1, hi))]
    score, index = max(scored)
    return index, score


def fidelity(samples: list[tuple[float, np.ndarray]], frames: list[tuple[float, int]],
             picture: np.ndarray, t0: float, t1: float) -> tuple[float | None, float | None]:
    """Median and 5th percentile PSNR of the samples captured in the second half of
    [``t0``, ``t1``] (once adaptation has settled), each against its best frame."""
    half = (t0 + t1) / 2
    scores = []
    for stamp, shown in samples:
        if half <= stamp <= t1 and (best := best_frame(stamp, shown, frames, picture)):
            scores.append(best[1])
    if not scores:
        return None, None
    ordered = sorted(scores)
    return statistics.median(ordered), ordered[int(0.05 * (len(ordered) - 1))]


def delivery(samples: list[tuple[float, np.ndarray]], arrivals: list[float],
             frames: list[tuple[float, int]], picture: np.ndarray, floor: float = 25.0
             ) -> tuple[int, float | None]:
    """(how many of the drawn ``frames`` some update showed, median ms from a frame's stamp
    to the arrival of the first update showing it; ``None`` if none was shown).

    ``samples[i]`` is the picture after the update that arrived at ``arrivals[i]``. An
    update shows the frame it matches best (:func:`best_frame`) if it scores at least
    ``floor`` dB against it: a picture still half made of an earlier frame (tiles of a
    round not yet all painted) shows none. This counts the frames a viewer saw however late
    the link let them arrive, where a fixed window's update count also loses the frames whose
    updates arrive after it closes."""
    first: dict[int, float] = {}
    for (stamp, shown), arrival in zip(samples, arrivals, strict=True):
        best = best_frame(stamp, shown, frames, picture)
        if best is not None and best[1] >= floor:
            first.setdefault(best[0], arrival)
    if not first:
        return 0, None
    late = [(arrival - frames[i][0]) * 1000 for i, arrival in first.items()]
    return len(first), statistics.median(late)
