"""Photo-like test pictures for the fidelity benchmark (benchmarks/bench_fidelity.py).

:func:`photo` builds, from a seed, an RGB picture with what makes real photographs expensive
to code and easy to spoil: overlapping shaded shapes (ellipses and polygons lit from one
side), each with its own per-pixel texture (value noise at several scales, some with fine
stripes), soft shadows under them, sharp edges between them, and film grain over everything.
It is not gradients plus noise: most of the energy is in edges and mid-frequency texture,
which JPEG at a low quality smears and a downscale loses.

:func:`from_file` cuts the same kind of picture from an image file instead (a photograph nobody
here tuned anything on).

:func:`pan_offset` is where a picture wider than the screen is looked at for frame ``i`` of a
pan (a triangle wave, so the pan goes back and forth without a jump). Both are deterministic,
so the load client that draws the frames and the benchmark that scores the viewer's picture
build the same pixels independently.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["from_file", "pan_offset", "photo"]


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a random grid of ``cell``-pixel spacing, bilinearly upscaled."""
    grid = rng.uniform(0, 255, size=(height // cell + 2, width // cell + 2)).astype(np.uint8)
    big = Image.fromarray(grid, "L").resize(
        ((width // cell + 2) * cell, (height // cell + 2) * cell), Image.Resampling.BILINEAR)
    return np.asarray(big, dtype=np.float32)[:height, :width] / 127.5 - 1.0


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A shape's surface: value noise at three scales, and sometimes fine stripes."""
    tex = (0.5 * _value_noise(rng, height, width, 24) + 0.3 * _value_noise(rng, height, width, 6)
           + 0.2 * _value_noise(rng, height, width, 2))
    if rng.random() < 0.4:  # fabric, bark, blinds: detail a downscale loses at once
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(3.0, 9.0)
        tex += 0.6 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period)
    return tex


def _shape_mask(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """An ellipse or a polygon filling most of a ``width`` x ``height`` box, as an L mask."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    if rng.random() < 0.55:
        draw.ellipse((1, 1, width - 2, height - 2), fill=255)
    else:
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(0.55, 1.0, n)
        points = [(float(width / 2 * (1 + r * np.cos(a))), float(height / 2 * (1 + r * np.sin(a))))
                  for a, r in zip(angles, radii, strict=True)]
        draw.polygon(points, fill=255)
    return mask


def photo(width: int, height: int, seed: int = 16, shapes: int | None = None) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 photo-like picture, the same for the same arguments.

    ``shapes`` (default: one per 14,000 pixels) shaded, textured shapes over a textured, unevenly
    lit ground, each casting a blurred shadow; then film grain. About a second per megapixel.
    """
    rng = np.random.default_rng(seed)
    count = shapes if shapes is not None else max(1, width * height // 14_000)
    # Ground: a muted colour under broad light variation and its own texture.
    light = 0.75 + 0.25 * _value_noise(rng, height, width, 256)
    ground = rng.uniform(60, 170, size=3).astype(np.float32)
    canvas = ground[None, None, :] * (light * (1 + 0.12 * _texture(rng, height, width)))[..., None]
    for _ in range(count):
        w = int(rng.integers(40, max(41, min(width, 520))))
        h = int(rng.integers(40, max(41, min(height, 420))))
        x0 = int(rng.integers(-w // 3, width - 2 * w // 3))
        y0 = int(rng.integers(-h // 3, height - 2 * h // 3))
        mask_img = _shape_mask(rng, w, h)
        # Soft shadow: the mask blurred, offset down-right, darkening what is under it.
        off = int(rng.integers(6, 22))
        pad = off * 2  # room for the blur, so the shadow fades out instead of ending square
        padded = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
        padded.paste(mask_img, (pad, pad))
        shadow = np.asarray(padded.filter(ImageFilter.GaussianBlur(off / 2)),
                            dtype=np.float32) / 255.0
        _blend(canvas, shadow * 0.45, x0 + off - pad, y0 + off - pad, None)
        # The shape: a base colour lit from the top left, and its texture.
        mask = np.asarray(mask_img.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float32) / 255
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        shade = 1.15 - 0.55 * ((xx / w) * 0.6 + (yy / h) * 0.4)
        colour = rng.uniform(20, 235, size=3).astype(np.float32)
        strength = rng.uniform(0.08, 0.35)
        surface = colour[None, None, :] * (shade * (1 + strength * _texture(rng, h, w)))[..., None]
        _blend(canvas, mask, x0, y0, surface)
    grain = rng.normal(0.0, 5.0, size=(height, width, 1)).astype(np.float32)
    grain = grain + rng.normal(0.0, 2.0, size=(height, width, 3)).astype(np.float32)
    return np.clip(canvas + grain, 0, 255).astype(np.uint8)


def from_file(path: str, width: int, height: int) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 picture cut from the image file at ``path`` (a real
    photograph, say): scaled (Lanczos) so it covers ``width`` x ``height``, then its middle
    cut out, so a figure can be checked on content nobody here drew.

    :raises ValueError: the file is not an image Pillow reads.
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: not a picture ({err})") from err
    scale = max(width / rgb.width, height / rgb.height)
    size = (max(width, round(rgb.width * scale)), max(height, round(rgb.height * scale)))
    rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return np.asarray(rgb.crop((left, top, left + width, top + height)), dtype=np.uint8).copy()


def _blend(canvas: np.ndarray, alpha: np.ndarray, x0: int, y0: int,
           surface: np.ndarray | None) -> None:
    """Blend ``surface`` (or black, for a shadow) into ``canvas`` at (x0, y0) by ``alpha``,
    clipped to the canvas."""
    height, width = canvas.shape[:2]
    h, w = alpha.shape
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x0 + w), min(height, y0 + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    a = alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
    region = canvas[cy0:cy1, cx0:cx1]
    if surface is None:
        region *= 1 - a
    else:
        region += a * (surface[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] - region)


def pan_offset(frame: int, step: int, span: int) -> int:
    """Left edge of the screen within the picture for frame ``frame`` of a pan moving
    ``step`` pixels a frame over ``span`` pixels of extra width, back and forth."""
    if span <= 0:
        return 0
    pos = (frame * step) % (2 * span)
    return pos if pos <= span else 2 * span - pos
