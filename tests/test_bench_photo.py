"""benchmarks/photo.py's picture from a file: the real photograph a figure is checked on is cut
to the size asked, keeps its middle, and a file that is no picture is refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.photo import from_file


def test_a_wide_picture_is_scaled_to_the_height_and_its_middle_kept(tmp_path: Path) -> None:
    # 400x100, left half red, right half blue, a green band in the middle fifth.
    pixels = np.zeros((100, 400, 3), np.uint8)
    pixels[:, :200, 0] = 255
    pixels[:, 200:, 2] = 255
    pixels[:, 160:240] = (0, 255, 0)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    got = from_file(str(tmp_path / "wide.png"), 100, 50)
    assert got.shape == (50, 100, 3) and got.dtype == np.uint8
    # Scaled by 1/2 (to the height): 200x50, of which columns 50-150 are kept, the green
    # band (80-120 scaled) in their middle.
    assert tuple(got[25, 50]) == (0, 255, 0)
    assert got[25, 5, 0] > 200 and got[25, 5, 2] < 50
    assert got[25, 95, 2] > 200 and got[25, 95, 0] < 50


def test_a_small_picture_is_scaled_up_to_cover(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "s.png")
    got = from_file(str(tmp_path / "s.png"), 3840, 1080)
    assert got.shape == (1080, 3840, 3)
    assert got.std() > 10  # the picture, not a blank


def test_a_file_that_is_no_picture_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("not a JPEG")
    with pytest.raises(ValueError, match=r"notes\.jpg: not a picture"):
        from_file(str(tmp_path / "notes.jpg"), 100, 50)
    with pytest.raises(ValueError, match="not a picture"):
        from_file(str(tmp_path / "missing.png"), 100, 50)
