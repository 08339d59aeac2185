"""benchmarks/bench_fidelity.py's sampling of the viewer's picture: exactly the pixels its
score compares with the drawn frames (every STEP-th of every STEP-th row, from OFFSET on); and
which drawn frames an update's picture is scored against."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmarks.bench_fidelity import OFFSET, STEP, H, W, _fidelity, sample, span


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
    median, p5 = _fidelity(shows, frames, picture, 9.0, 10.0)
    assert median == p5 == float("inf")
    # 20 ms after the stamp is a later frame, never a candidate.
    late = [(t - 0.02, shown) for t, shown in shows]
    assert _fidelity(late, frames, picture, 9.0, 10.0)[0] != float("inf")


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
