"""CPU of a Python viewer applying JPEG tiles to its framebuffer, at the host's three scales.

The viewer library's :meth:`~rdesk.client.framebuffer.Framebuffer.apply` (what every Python
face runs for each update: the Tk window, ``watch``, ``play``, the CLI verbs) is timed on real
JPEG rectangles encoded as the host encodes them (:func:`rdesk.host.encoding.encode.encode_rect`
at the quality and scale of a level): one full 1080p screen, and a screen's worth of 256x256
tiles, of a photograph (``--image``) or the benchmarks' photo-like picture. Each case is run
on both of the framebuffer's paths, interleaved: ``libyuv`` (half-scale tiles doubled into
its memory, rdesk/client/upscale.py) and ``pillow`` (every tile resized and pasted), the
first being what a viewer with libyuv does. Thread CPU per update, median of ``--runs``, and
the PSNR of the picture each path leaves against the true one::

    python benchmarks/bench_tile_apply.py [--runs 5] [--repeat 20] [--image FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.photo import from_file, photo
from rdesk.client.framebuffer import Framebuffer
from rdesk.host.encoding.encode import encode_rect
from rdesk.protocol.updates import Rect, Update

W, H = 1920, 1080
#: (name, quality, scale): the host's full-size, half-scale and quarter-scale lossy tiles.
LEVELS = [("full size, q80", 80, 1.0), ("half scale, q30", 30, 0.5),
          ("quarter scale, q30", 30, 0.25)]
TILE = 256


def _update(frame: np.ndarray, quality: int, scale: float, tile: int | None) -> Update:
    """The update the host would send for the whole of ``frame`` (BGRA) at a level."""
    boxes = ([(0, 0, W, H)] if tile is None else
             [(x, y, min(tile, W - x), min(tile, H - y))
              for y in range(0, H, tile) for x in range(0, W, tile)])
    rects = []
    for x, y, w, h in boxes:
        enc = encode_rect(frame, (x, y, w, h), lossless=False, quality=quality, scale=scale)
        rects.append(Rect(x, y, w, h, enc.encoding, enc.payload))
    return Update(1, 0, tuple(rects), exact=False)


def _time(update: Update, path: str, repeat: int, truth: np.ndarray) -> tuple[float, float]:
    """Thread CPU ms per apply of ``update`` on ``path``, and the PSNR (dB) of the picture it
    leaves against ``truth`` (RGB)."""
    fb = Framebuffer(W, H)
    if path == "pillow":
        fb._upscaler._lib = None  # the path of a viewer without libyuv
    fb.apply(update)  # warm: scratch planes, decoders
    start = time.thread_time()
    for _ in range(repeat):
        fb.apply(update)
    cpu = (time.thread_time() - start) / repeat * 1000
    err = np.mean((np.asarray(fb.image, dtype=np.float64) - truth) ** 2)
    return cpu, float(10 * np.log10(255**2 / err))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20, help="applies per run (20)")
    parser.add_argument("--image", metavar="FILE", help="a photograph (default: the "
                        "benchmarks' photo-like picture, benchmarks/photo.py)")
    args = parser.parse_args(argv)
    rgb = from_file(args.image, W, H) if args.image else photo(W, H)
    frame = np.empty((H, W, 4), np.uint8)
    frame[..., :3] = rgb[..., ::-1]  # BGRA, as the host captures
    frame[..., 3] = 255
    print("| tiles | level | bytes | libyuv ms/update | pillow ms/update "
          "| PSNR dB libyuv / pillow |")
    print("|---|---|---|---|---|---|")
    for tile in (None, TILE):
        for name, quality, scale in LEVELS:
            update = _update(frame, quality, scale, tile)
            size = sum(len(r.payload) for r in update.rects)
            times: dict[str, list[float]] = {"libyuv": [], "pillow": []}
            score: dict[str, float] = {}
            for _ in range(args.runs):
                for path in times:
                    cpu, score[path] = _time(update, path, args.repeat, rgb)
                    times[path].append(cpu)
            medians = {path: statistics.median(t) for path, t in times.items()}
            kind = "one 1920x1080" if tile is None else f"{TILE}x{TILE} tiles"
            print(f"| {kind} | {name} | {size / 1000:.0f} kB | {medians['libyuv']:.2f} | "
                  f"{medians['pillow']:.2f} | {score['libyuv']:.2f} / {score['pillow']:.2f} |")
    print(f"picture: {args.image or 'benchmarks/photo.py, seed 16'}")
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{platform.python_implementation()} {platform.python_version()}; {args.repeat} "
          f"applies per run, median of {args.runs} runs; 1-min load at the end "
          f"{os.getloadavg()[0]:.2f}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
