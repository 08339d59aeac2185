"""A known picture on an X display, drawn by a program inside the desktop image.

As a script (the session of the image's host, run with the image's own Python, which has
python-xlib and numpy): ``pattern.py OUT`` covers the screen with :func:`pattern`, reads the
screen back from the X server (what the container's display shows) into ``OUT`` as a binary PPM
(written whole, then renamed: its presence says the picture is up) and waits to be stopped.
The test imports :func:`pattern` to know what to expect, pixel for pixel.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

#: Rows per PutImage request: under the core protocol's 256 KiB request limit at 4 bytes/pixel.
_ROWS = 32


def pattern(width: int, height: int) -> np.ndarray:
    """An RGB picture (``height × width × 3``, uint8) with gradients, a fine checker and
    arithmetic noise: no two neighbouring rows or columns alike, nothing a codec gets exact by
    accident."""
    y, x = np.mgrid[0:height, 0:width].astype(np.uint32)
    red = (x * 255 // max(width - 1, 1)) ^ ((x + y) & 1) * 0x40
    green = (y * 255 // max(height - 1, 1)) ^ ((x // 3 + y // 5) & 3) * 0x11
    blue = (x * x * 7 + y * 13 + x * y) % 251
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def _draw_and_grab(out: str) -> None:
    from Xlib import X, display

    dpy = display.Display()
    screen = dpy.screen()
    width, height = screen.width_in_pixels, screen.height_in_pixels
    window = screen.root.create_window(0, 0, width, height, 0, screen.root_depth,
                                       override_redirect=True)
    window.map()
    gc = window.create_gc()
    rgb = pattern(width, height)
    bgrx = np.zeros((height, width, 4), np.uint8)
    bgrx[..., 0], bgrx[..., 1], bgrx[..., 2] = rgb[..., 2], rgb[..., 1], rgb[..., 0]
    for top in range(0, height, _ROWS):
        rows = bgrx[top:top + _ROWS]
        window.put_image(gc, 0, top, width, rows.shape[0], X.ZPixmap, screen.root_depth, 0,
                         rows.tobytes())
    dpy.sync()
    shot = screen.root.get_image(0, 0, width, height, X.ZPixmap, 0xFFFFFFFF)
    seen = np.frombuffer(shot.data, np.uint8).reshape(height, width, 4)[..., 2::-1]
    with open(out + ".part", "wb") as file:
        file.write(b"P6 %d %d 255\n" % (width, height) + seen.tobytes())
    os.replace(out + ".part", out)


if __name__ == "__main__":
    _draw_and_grab(sys.argv[1])
    while True:
        time.sleep(3600)
