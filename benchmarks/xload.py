"""A small X client that loads the screen for benchmarks/bench_viewers.py.

    python benchmarks/xload.py typing|motion|photo [--seconds S] [--fps F]

Maps a full-screen window, prints ``ready``, waits for a line on stdin, then for ``--seconds``:

- ``typing``: draws one 10x16 "glyph" rectangle at a new position ``--fps`` (30) times a
  second, advancing like a text cursor;
- ``motion``: copies a few precomputed, different gradient+noise frames (held in server-side
  pixmaps) over the whole screen in a loop, as fast as the X server takes them (a round trip
  after each frame), at most ``--fps`` (60) a second;
- ``photo``: pans across a photo-like picture wider than the screen (``--picture``, a ``.npy``
  RGB array made by :func:`benchmarks.photo.photo`, held in one server-side pixmap) by
  ``--step`` (8) pixels a frame, back and forth (:func:`benchmarks.photo.pan_offset`), at
  ``--fps`` (30) frames a second; each frame is one server-side copy, so every grab sees a
  whole frame. Before exiting it prints ``frames`` and a JSON list of ``[monotonic time the
  server had taken the frame, offset]`` for every frame, for the benchmark's fidelity score.

Then prints ``drawn N elapsed T`` and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.photo import pan_offset
from tests.xclients.painter import PixelFormat

GLYPH_W, GLYPH_H = 10, 16
MOTION_FRAMES = 4


def motion_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """``count`` RGB frames: shifted diagonal gradients with mild noise, all different."""
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.int32)
    frames = []
    for i in range(count):
        shift = i * 97
        r = (xx + shift) * 255 // width
        g = (yy + 2 * shift) * 255 // height
        b = ((xx + yy) // 4 + 3 * shift) % 256
        rgb = np.stack([r % 256, g % 256, b], axis=-1)
        rgb += rng.integers(-12, 13, size=rgb.shape, dtype=np.int32)
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return frames


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("typing", "motion", "photo"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fps", type=float, default=0.0)
    parser.add_argument("--picture", type=Path, help="photo: the .npy picture to pan across")
    parser.add_argument("--step", type=int, default=8, help="photo: pixels per frame (8)")
    args = parser.parse_args()
    from Xlib import X, display

    dpy = display.Display()
    screen = dpy.screen()
    width, height = screen.width_in_pixels, screen.height_in_pixels
    fmt = PixelFormat(dpy)
    window = screen.root.create_window(
        0, 0, width, height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
        background_pixel=fmt.pixel((250, 250, 245)), override_redirect=True,
        event_mask=X.StructureNotifyMask,
    )
    gc = window.create_gc(graphics_exposures=False)
    window.map()
    while True:
        event = dpy.next_event()
        if event.type == X.MapNotify and event.window == window:
            break
    window.clear_area(0, 0, width, height)

    # Upload the motion frames once into server-side pixmaps (put_image bands that fit one
    # request each); each frame is then one server-side copy, so the generator itself can
    # sustain far more than 60 full-screen frames a second.
    rows = max(1, fmt.max_data // (width * 4))
    pixmaps = []
    if args.mode == "motion":
        for rgb in motion_frames(width, height, MOTION_FRAMES):
            pixmap = window.create_pixmap(width, height, screen.root_depth)
            for top in range(0, height, rows):
                h = min(rows, height - top)
                pixmap.put_image(gc, 0, top, width, h, X.ZPixmap, fmt.depth, 0,
                                 fmt.pack(rgb[top : top + rows]))
            pixmaps.append(pixmap)
    span = 0
    if args.mode == "photo":
        picture = np.load(args.picture)
        span = picture.shape[1] - width
        pixmap = window.create_pixmap(picture.shape[1], height, screen.root_depth)
        wide_rows = max(1, fmt.max_data // (picture.shape[1] * 4))
        for top in range(0, height, wide_rows):
            h = min(wide_rows, height - top)
            pixmap.put_image(gc, 0, top, picture.shape[1], h, X.ZPixmap, fmt.depth, 0,
                             fmt.pack(picture[top : top + wide_rows, :]))
        pixmaps.append(pixmap)
    dpy.sync()
    print("ready", flush=True)
    sys.stdin.readline()

    fps = args.fps or (60.0 if args.mode == "motion" else 30.0)
    interval = 1.0 / fps
    inks = [fmt.pixel(c) for c in ((20, 20, 20), (200, 30, 30), (30, 30, 200))]
    cols, lines = (width - 40) // (GLYPH_W + 2), (height - 40) // (GLYPH_H + 4)
    drawn = 0
    frames: list[tuple[float, int]] = []
    start = time.monotonic()
    next_at = start
    while (now := time.monotonic()) - start < args.seconds:
        if now < next_at:
            time.sleep(next_at - now)
        next_at = max(next_at + interval, time.monotonic() - interval)
        if args.mode == "typing":
            cell = drawn % (cols * lines)
            x = 20 + (cell % cols) * (GLYPH_W + 2)
            y = 20 + (cell // cols) * (GLYPH_H + 4)
            gc.change(foreground=inks[(drawn // (cols * lines)) % len(inks)])
            window.fill_rectangle(gc, x, y, GLYPH_W, GLYPH_H)
        elif args.mode == "photo":
            offset = pan_offset(drawn, args.step, span)
            window.copy_area(gc, pixmaps[0], offset, 0, width, height, 0, 0)
        else:
            window.copy_area(gc, pixmaps[drawn % len(pixmaps)], 0, 0, width, height, 0, 0)
        dpy.sync()  # a round trip: the server has taken this frame before we draw the next
        if args.mode == "photo":
            frames.append((time.monotonic(), offset))
        drawn += 1
    if args.mode == "photo":
        print("frames " + json.dumps(frames), flush=True)
    print(f"drawn {drawn} elapsed {time.monotonic() - start:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
