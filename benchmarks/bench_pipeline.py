"""Benchmark the host pipeline: capture -> tile diff -> merge -> encode, at 1920x1080.

Starts its own Xvfb (1920x1080x24), paints UI-like content on it, and prints a markdown table
of median timings plus the machine it ran on. Usage::

    python benchmarks/bench_pipeline.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from rdesk.host.encoding.encode import encode_rect, is_photo_like
from rdesk.host.encoding.tiles import TILE, dirty_tiles, merge_tiles
from rdesk.host.screen.capture import MssCapturer
from rdesk.host.screen.virtual import VirtualDisplay
from rdesk.host.screen.xshm import ShmCapturer

__all__ = ["main"]

W, H = 1920, 1080


def ui_frame() -> np.ndarray:
    """A desktop-like BGRA frame: title bars, panels, lots of small text."""
    im = Image.new("RGB", (W, H), (236, 236, 236))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, W, 28), fill=(45, 45, 48))
    draw.rectangle((0, 28, 260, H), fill=(250, 250, 250))
    for i, y in enumerate(range(40, H, 16)):
        draw.text((10, y), f"item {i:03d} folder", fill=(30, 30, 30))
        draw.text(
            (280, y),
            "def encode_rect(frame, rect, *, lossless, quality): # text " * 2,
            fill=(0, 0, 120) if i % 3 else (0, 0, 0),
        )
    draw.rectangle((1300, 200, 1800, 700), fill=(255, 255, 255), outline=(0, 120, 215), width=2)
    rgb = np.asarray(im)
    return _bgra(rgb)


def photo_frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([xx * 255 / W, yy * 255 / H, (xx + yy) * 127 / (W + H)], axis=-1)
    return _bgra(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


def _bgra(rgb: np.ndarray) -> np.ndarray:
    out = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
    out[..., :3] = rgb[..., ::-1]
    out[..., 3] = 255
    return out


def median_ms(fn: Callable[[], Any], runs: int,
              clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    """Median ms of ``fn`` over ``runs`` calls (after one warm-up), by ``clock``: wall time,
    or ``time.thread_time`` for this thread's CPU alone (a grab also waits for the X server)."""
    result = fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = clock()
        result = fn()
        times.append(clock() - t0)
    return statistics.median(times) * 1e3, result


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    runs: int = args.runs

    rows: list[tuple[str, float, str]] = []
    ui = ui_frame()
    with VirtualDisplay(W, H) as xvfb:
        for name, kind in (("mss", MssCapturer), ("zero-copy", ShmCapturer)):
            with kind(xvfb.display) as cap:
                ms, frame = median_ms(cap.grab, runs)
                cpu, _ = median_ms(cap.grab, runs, time.thread_time)
                rows.append((f"{name} grab 1920x1080 (Xvfb, MIT-SHM), wall", ms,
                             f"{frame.nbytes / 1e6:.1f} MB"))
                rows.append((f"{name} grab, host CPU", cpu, "the rest is the X server's copy"))
                del frame

    prev = ui
    still = ui.copy()
    typing = ui.copy()
    typing[500:516, 700:764] ^= 0x55  # one 64x16 glyph area
    full = photo_frame()

    for label, cur in (("still", still), ("typing 64x16", typing), ("full change", full)):
        ms, mask = median_ms(partial(dirty_tiles, prev, cur), runs)
        rows.append((f"dirty_tiles, {label}", ms, f"{int(mask.sum())} dirty tiles"))

    typing_mask = dirty_tiles(prev, typing)
    ms, rects = median_ms(lambda: merge_tiles(typing_mask, TILE, W, H), runs)
    rows.append(("merge_tiles, typing", ms, f"{len(rects)} rects"))
    scattered = np.random.default_rng(1).random(typing_mask.shape) < 0.3
    ms, rects = median_ms(lambda: merge_tiles(scattered, TILE, W, H), runs)
    rows.append(("merge_tiles, 30 % random tiles", ms, f"{len(rects)} rects"))

    whole = (0, 0, W, H)
    ms, _ = median_ms(lambda: is_photo_like(ui, whole), runs)
    rows.append(("is_photo_like, full frame", ms, ""))
    cases: list[tuple[str, np.ndarray, tuple[int, int, int, int], dict[str, Any]]] = [
        ("JPEG q75, full frame UI", ui, whole, {"lossless": False, "quality": 75}),
        ("JPEG q75, full frame photo", full, whole, {"lossless": False, "quality": 75}),
        (
            "JPEG q75, full frame UI, scale 0.5",
            ui,
            whole,
            {"lossless": False, "quality": 75, "scale": 0.5},
        ),
        (
            "lossless, typing rect (64x64 tile)",
            typing,
            (704, 448, 64, 64),
            {"lossless": True, "quality": 75},
        ),
        ("lossless, full frame UI", ui, whole, {"lossless": True, "quality": 75}),
        ("lossless, full frame photo", full, whole, {"lossless": True, "quality": 75}),
        (
            "lossless+fallback, full frame photo",
            full,
            whole,
            {"lossless": True, "quality": 75, "allow_lossy_fallback": True},
        ),
    ]
    for label, fr, rect, kw in cases:
        ms, enc = median_ms(partial(encode_rect, fr, rect, **kw), runs)
        rows.append((label, ms, f"{enc.encoding.name}, {len(enc.payload) / 1e3:.1f} kB"))

    # Codec comparison behind the lossless choice (same full frames, raw Pillow).
    import io

    def save(im: Image.Image, fmt: str, **kw: Any) -> int:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return len(buf.getvalue())

    for name, fr in (("UI", ui), ("photo", full)):
        im = Image.frombuffer("RGB", (W, H), fr, "raw", "BGRX", 0, 1)
        for codec, kw in (
            ("WebP-lossless m0", {"lossless": True, "method": 0, "quality": 0}),
            ("PNG level 1", {"compress_level": 1}),
        ):
            fmt = "WEBP" if codec.startswith("WebP") else "PNG"
            ms, size = median_ms(partial(save, im, fmt, **kw), max(5, runs // 3))
            rows.append((f"{codec}, full frame {name}", ms, f"{size / 1e3:.1f} kB"))

    print(
        f"Machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, Pillow {Image.__version__}; median of {runs} runs.\n"
    )
    print("| step | median ms | notes |")
    print("|---|---:|---|")
    for label, ms, note in rows:
        print(f"| {label} | {ms:.2f} | {note} |")


if __name__ == "__main__":
    main()
