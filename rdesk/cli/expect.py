"""``rdesk expect``'s comparison: does a region of the screen match a reference PNG?

The measure is the root-mean-square difference of the RGB channels over the region (0: the
same pixels; 255: black against white), as vncdotool's ``expect`` uses: a tolerance of a few
units forgives a lossy (JPEG) tile or antialiasing, while a different picture stays far off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

from rdesk.cli.common import UsageError

__all__ = ["Reference", "load_reference", "region_rms"]


@dataclass(frozen=True)
class Reference:
    """The picture expected at ``(x, y)`` of the host's screen."""

    image: Image.Image
    x: int
    y: int

    def check_fits(self, width: int, height: int) -> None:
        """Raise :class:`UsageError` unless the region lies on a ``width``×``height`` screen."""
        w, h = self.image.size
        if self.x + w > width or self.y + h > height:
            raise UsageError(
                f"the {w}x{h} reference at {self.x},{self.y} does not fit the "
                f"{width}x{height} screen"
            )


def load_reference(file: Path, x: int, y: int) -> Reference:
    """Read ``file`` (any image Pillow reads, as RGB); one-line :class:`UsageError` if not."""
    try:
        with Image.open(file) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the reference image {file}: {exc}") from None
    return Reference(rgb, x, y)


def region_rms(screen: Image.Image, reference: Reference) -> float:
    """The RMS difference (0..255) between ``reference`` and the same region of ``screen``."""
    w, h = reference.image.size
    box = (reference.x, reference.y, reference.x + w, reference.y + h)
    region = screen.crop(box).convert("RGB")
    diff = ImageChops.difference(region, reference.image)
    squares = ImageStat.Stat(diff).sum2  # per channel: sum of squared differences
    return math.sqrt(sum(squares) / (3 * w * h))
