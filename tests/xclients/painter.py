"""A test X client that paints known, deterministic pixels over the whole screen.

Run it with ``DISPLAY`` set, as ``python -m tests.xclients.painter`` or by path::

    python tests/xclients/painter.py [--seed N] [--dump PATH]

It maps an override-redirect window covering the whole screen at (0, 0), paints the test
pattern for ``--seed`` (see :func:`make_pattern`), and prints ``ready``. Then it reads commands
on stdin, one per line:

``rect X Y W H RRGGBB``
    fill a rectangle with a solid colour;
``image SEED``
    repaint the whole screen with the pattern for another seed;
``scroll DY``
    scroll the content up by DY rows (negative: down), wrapping around like an endless text;
``sync``
    do nothing (a round trip);
``quit``
    exit (so does end of input).

After each command it prints ``ok`` once the X server has processed every drawing request
(an XSync round trip), so the pixels are on the screen. A bad command prints ``error ...``.
With ``--dump PATH`` the image it believes is on screen is written to PATH as a PNG (atomically)
before each ``ready``/``ok``, so a test can compare exactly.

The script is standalone: it needs python-xlib, numpy and Pillow, not the rdesk package.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
from typing import Any

import numpy as np

TILE = 64


def make_pattern(width: int, height: int, seed: int) -> np.ndarray:
    """The test image for ``seed``: an ``(height, width, 3)`` uint8 RGB array.

    Every 64x64 tile has its own distinct colour; on top there is fine detail that codecs and
    scalers find hard: a horizontal gradient band per tile row, 1-pixel lines in a colour
    contrasting with each tile, a block of black/white "text" noise per tile and scattered
    single pixels of random colour. The same ``(width, height, seed)`` always gives the same
    image.
    """
    rng = np.random.default_rng(seed)
    ntx = -(-width // TILE)
    nty = -(-height // TILE)
    colours = rng.choice(1 << 24, size=ntx * nty, replace=False).astype(np.uint32)
    tiles = np.stack(
        [(colours >> 16) & 0xFF, (colours >> 8) & 0xFF, colours & 0xFF], axis=-1
    ).astype(np.uint8)
    tiles = tiles.reshape(nty, ntx, 3)
    img = np.repeat(np.repeat(tiles, TILE, axis=0), TILE, axis=1)[:height, :width].copy()

    ys, xs = np.mgrid[0:height, 0:width]
    # A gradient band, 8 rows high, in every tile row.
    band = (ys % TILE >= 48) & (ys % TILE < 56)
    ramp = (xs * 255 // max(width - 1, 1)).astype(np.uint8)
    img[band, 0] = ramp[band]
    img[band, 2] = 255 - ramp[band]
    img[band, 1] = ((ys[band] % TILE - 48) * 32).astype(np.uint8)

    # 1-pixel lines at a seed-dependent offset inside each tile, in the inverse colour.
    lx, ly = (int(v) for v in rng.integers(1, TILE - 1, size=2))
    lines = (xs % TILE == lx) | (ys % TILE == ly)
    img[lines] = 255 - img[lines]

    # "Text": a 24x8 block of black/white noise near the top-left of each tile.
    glyphs = rng.integers(0, 2, size=(height, width), dtype=np.uint8) * 255
    text = (xs % TILE >= 4) & (xs % TILE < 28) & (ys % TILE >= 4) & (ys % TILE < 12)
    img[text] = glyphs[text][:, None]

    # Scattered single pixels of random colour (about 1%).
    dots = rng.random((height, width)) < 0.01
    img[dots] = rng.integers(0, 256, size=(int(dots.sum()), 3), dtype=np.uint8)
    return img


def parse_colour(text: str) -> tuple[int, int, int]:
    """Parse ``RRGGBB`` (optionally with a leading ``#``) into ``(r, g, b)``."""
    text = text.removeprefix("#")
    if len(text) != 6:
        raise ValueError(f"bad colour {text!r}, want RRGGBB")
    value = int(text, 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


class PixelFormat:
    """How the server wants ZPixmap data for the root visual (32 bits per pixel only)."""

    def __init__(self, display: Any) -> None:
        from Xlib import X

        screen = display.screen()
        self.depth = screen.root_depth
        info = display.display.info
        fmt = next(f for f in info.pixmap_formats if f.depth == self.depth)
        if fmt.bits_per_pixel != 32:
            raise SystemExit(f"painter: unsupported depth {self.depth} ({fmt.bits_per_pixel} bpp)")
        visual = next(
            v for d in screen.allowed_depths for v in d.visuals if v.visual_id == screen.root_visual
        )
        self.masks = (visual.red_mask, visual.green_mask, visual.blue_mask)
        self.shifts = tuple((m & -m).bit_length() - 1 for m in self.masks)
        self.little = info.image_byte_order == X.LSBFirst
        # PutImage header is 24 bytes; max_request_length counts 4-byte units.
        self.max_data = info.max_request_length * 4 - 64

    def pack(self, rgb: np.ndarray) -> bytes:
        """Pack an ``(h, w, 3)`` RGB array into ZPixmap bytes."""
        pixels = np.zeros(rgb.shape[:2], np.uint32)
        for channel, shift in enumerate(self.shifts):
            pixels |= rgb[..., channel].astype(np.uint32) << np.uint32(shift)
        return pixels.astype("<u4" if self.little else ">u4").tobytes()

    def pixel(self, rgb: tuple[int, int, int]) -> int:
        """The pixel value of one colour."""
        return sum(c << s for c, s in zip(rgb, self.shifts, strict=True))


class Painter:
    """The painter's X state: one full-screen window and the image it should show."""

    def __init__(self, seed: int, dump: str | None) -> None:
        from Xlib import X, display

        self.display = display.Display()
        self.screen = self.display.screen()
        self.width = self.screen.width_in_pixels
        self.height = self.screen.height_in_pixels
        self.format = PixelFormat(self.display)
        self.dump = dump
        self.image = make_pattern(self.width, self.height, seed)
        self._patterns: dict[int, np.ndarray] = {}
        self.window = self.screen.root.create_window(
            0,
            0,
            self.width,
            self.height,
            0,
            self.screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixmap=X.NONE,
            override_redirect=True,
            event_mask=X.ExposureMask | X.StructureNotifyMask,
        )
        self.window.set_wm_name("rdesk-test-painter")
        self.gc = self.window.create_gc(graphics_exposures=False)

    def map(self) -> None:
        """Map the window, wait until it is viewable, and paint it."""
        from Xlib import X

        self.window.map()
        while True:
            event = self.display.next_event()
            if event.type == X.MapNotify and event.window == self.window:
                break
        self.paint(0, 0, self.width, self.height)
        self.finish()

    def paint(self, x: int, y: int, w: int, h: int) -> None:
        """Send the area ``(x, y, w, h)`` of :attr:`image` in row bands that fit a request."""
        from Xlib import X

        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        rows = max(1, self.format.max_data // ((x1 - x0) * 4))
        for top in range(y0, y1, rows):
            bottom = min(top + rows, y1)
            data = self.format.pack(self.image[top:bottom, x0:x1])
            self.window.put_image(
                self.gc, x0, top, x1 - x0, bottom - top, X.ZPixmap, self.format.depth, 0, data
            )

    def fill(self, x: int, y: int, w: int, h: int, rgb: tuple[int, int, int]) -> None:
        """Fill a rectangle with a solid colour."""
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        self.image[y0:y1, x0:x1] = rgb
        self.gc.change(foreground=self.format.pixel(rgb))
        self.window.fill_rectangle(self.gc, x0, y0, x1 - x0, y1 - y0)

    def scroll(self, dy: int) -> None:
        """Scroll the content up by ``dy`` rows (down if negative), as a text view does: the
        image wraps around (an endless text), copied on the server, the new rows painted."""
        dy %= self.height
        if dy == 0:
            return
        self.image = np.roll(self.image, -dy, axis=0)
        self.window.copy_area(self.gc, self.window, 0, dy, self.width, self.height - dy, 0, 0)
        self.paint(0, self.height - dy, self.width, dy)

    def finish(self) -> None:
        """Wait for the server to process everything, then write the dump if asked."""
        self.display.sync()
        if self.dump:
            from PIL import Image

            tmp = f"{self.dump}.tmp{os.getpid()}.png"
            Image.fromarray(self.image, "RGB").save(tmp)
            os.replace(tmp, self.dump)

    def handle_events(self) -> None:
        """Repaint exposed areas (e.g. after an overlapping window went away)."""
        from Xlib import X

        painted = False
        while self.display.pending_events():
            event = self.display.next_event()
            if event.type == X.Expose and event.window == self.window:
                self.paint(event.x, event.y, event.width, event.height)
                painted = True
        if painted:
            self.display.flush()

    def command(self, line: str) -> bool:
        """Run one command line; False means quit."""
        words = line.split()
        if not words:
            return True
        verb, args = words[0], words[1:]
        if verb == "quit":
            return False
        if verb == "rect" and len(args) == 5:
            x, y, w, h = (int(a) for a in args[:4])
            self.fill(x, y, w, h, parse_colour(args[4]))
        elif verb == "image" and len(args) == 1:
            # Patterns are cached (a few): benchmarks cycle seeds for full-screen motion.
            seed = int(args[0])
            if seed not in self._patterns:
                if len(self._patterns) >= 8:
                    self._patterns.pop(next(iter(self._patterns)))
                self._patterns[seed] = make_pattern(self.width, self.height, seed)
            self.image = self._patterns[seed].copy()
            self.paint(0, 0, self.width, self.height)
        elif verb == "scroll" and len(args) == 1:
            self.scroll(int(args[0]))
        elif verb == "sync" and not args:
            pass
        else:
            raise ValueError(f"unknown command {line!r}")
        self.finish()
        return True


def say(word: str) -> None:
    """Print one line on stdout and flush it."""
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="pattern seed (default 0)")
    parser.add_argument("--dump", metavar="PATH", help="write the painted image here as PNG")
    args = parser.parse_args(argv)

    painter = Painter(args.seed, args.dump)
    painter.map()
    say("ready")

    stdin = sys.stdin.fileno()
    xfd = painter.display.fileno()
    buf = b""
    while True:
        painter.handle_events()
        readable, _, _ = select.select([stdin, xfd], [], [], 1.0)
        if stdin not in readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            try:
                keep_going = painter.command(raw.decode())
            except ValueError as exc:
                say(f"error {exc}")
                continue
            if not keep_going:
                painter.display.close()
                return 0
            say("ok")
    painter.display.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
