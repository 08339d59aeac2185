"""benchmarks/bench_fidelity.py's sampling of the viewer's picture: exactly the pixels its
score compares with the drawn frames (every STEP-th of every STEP-th row, from OFFSET on)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmarks.bench_fidelity import OFFSET, STEP, sample


@pytest.mark.parametrize("size", [(1920, 1080), (1923, 1084), (64, 33)])
def test_sample_is_the_strided_slice(size: tuple[int, int]) -> None:
    w, h = size
    pixels = np.random.default_rng(w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = sample(Image.fromarray(pixels))
    want = pixels[OFFSET::STEP, OFFSET::STEP][: h // STEP, : w // STEP]
    assert got.shape == want.shape
    assert np.array_equal(got, want)
