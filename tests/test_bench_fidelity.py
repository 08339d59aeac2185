"""benchmarks/fidelity.py, bench_fidelity.py's scoring: its sampling of the viewer's picture
(exactly the pixels its score compares with the drawn frames: every STEP-th of every STEP-th
row, from OFFSET on), which drawn frames an update's picture is scored against, and which
frames the viewer was shown."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmarks.fidelity import OFFSET, STEP, H, W, delivery, fidelity, sample, span


@pytest.mark.parametrize("size", [(1920, 1080), (1923, 1084), (64, 33)])
def test_sample_is_the_strided_slice(size: tuple[int, int]) -> None:
    w, h = size
    pixels = np.random.default_rng(w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = sample(Image.fromarray(pixels))
    want = pixels[OFFSET::STEP, OFFSET::STEP][: h // STEP, : w // STEP]
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_a_frame_stamped_just_after_the_update_is_the_one_it_shows() -> None:
    """The generator stamps a frame once the X server answered it, so the host may have
    grabbed it and stamped its update a millisecond or two earlier: that frame still counts
    (scored against the frame before, such updates read 20 dB: the old p5)."""
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (H, W + 64, 3), dtype=np.uint8)
    frames = [(10.0 + i / 30, 8 * i) for i in range(8)]
    shows = [(frames[i][0] - 0.002, picture[OFFSET::STEP, 8 * i + OFFSET : 8 * i + W : STEP])
             for i in range(1, 8)]
    median, p5 = fidelity(shows, frames, picture, 9.0, 11.0)
    assert median == p5 == float("inf")
    # 20 ms after the stamp is a later frame, never a candidate.
    late = [(t - 0.02, shown) for t, shown in shows]
    assert fidelity(late, frames, picture, 9.0, 11.0)[0] != float("inf")


def test_span_is_the_rate_from_the_first_update_on() -> None:
    """Every frame of a 30 fps pan delivered 100 ms late: the fixed window counts 29.6 a
    second, the span from the first update the 30 the viewer gets."""
    times = [0.1 + i / 30 for i in range(238)]  # 0.1 .. 7.97 s
    rate, first_ms = span(times, 0.0, 8.0)
    assert len(times) / 8.0 == pytest.approx(29.75)
    assert rate == pytest.approx(30.0) and first_ms == pytest.approx(100.0)
    # Updates outside the window do not count; fewer than two give nothing.
    assert span([-1.0, *times, 9.0], 0.0, 8.0) == (rate, first_ms)
    assert span([1.0], 0.0, 8.0) == (None, None)
    assert span([], 0.0, 8.0) == (None, None)


def _pan(frames: int) -> tuple[np.ndarray, list[tuple[float, int]]]:
    """A noise picture wide enough for ``frames`` frames panned 8 pixels apart, 30 a second."""
    picture = np.random.default_rng(2).integers(0, 256, (H, W + 8 * frames, 3), dtype=np.uint8)
    return picture, [(10.0 + i / 30, 8 * i) for i in range(frames)]


def _shown(picture: np.ndarray, offset: int) -> np.ndarray:
    return picture[OFFSET::STEP, offset + OFFSET : offset + W : STEP]


def test_the_samples_captured_after_the_window_are_not_scored() -> None:
    picture, frames = _pan(4)
    shows = [(frames[i][0], _shown(picture, 8 * i)) for i in range(4)]
    assert fidelity(shows, frames, picture, 9.0, 10.05)[0] == float("inf")  # the first two
    assert fidelity(shows, frames, picture, 8.0, 9.0) == (None, None)


def test_delivery_counts_each_frame_shown_once_with_its_first_arrival() -> None:
    """Frames 0-5 drawn; 0 and 4 never shown alone (the host took the next one), 2 shown by
    two updates: four frames shown, each's delay from its own first update."""
    picture, frames = _pan(6)
    seen = [1, 2, 2, 3, 5]
    shows = [(frames[i][0] + 0.001, _shown(picture, 8 * i)) for i in seen]
    arrivals = [frames[i][0] + 0.1 + 0.01 * n for n, i in enumerate(seen)]
    count, late_ms = delivery(shows, arrivals, frames, picture)
    assert count == 4
    # Delays 100, 110, 130, 140 ms (the second showing of frame 2 is not its first).
    assert late_ms == pytest.approx(120.0)
    assert delivery([], [], frames, picture) == (0, None)


def test_a_picture_matching_no_frame_well_shows_none() -> None:
    """A picture half of one frame and half of the next (a round not yet all painted) is
    under the floor against either, so it shows no frame; the same at a low floor does."""
    picture, frames = _pan(3)
    mixed = _shown(picture, 8).copy()
    mixed[:, mixed.shape[1] // 2 :] = _shown(picture, 16)[:, mixed.shape[1] // 2 :]
    shows, arrivals = [(frames[2][0], mixed)], [frames[2][0] + 0.05]
    assert delivery(shows, arrivals, frames, picture) == (0, None)
    assert delivery(shows, arrivals, frames, picture, floor=0.0)[0] == 1
