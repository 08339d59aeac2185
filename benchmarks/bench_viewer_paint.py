"""Paint cost of the desktop viewer window (rdesk.client.tk.window) per update size.

Run under an X server (Xvfb is fine)::

    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/bench_viewer_paint.py

It drives the window's real paint path (dirty set -> MIT-SHM put into the window, or crop or
box-resize -> PhotoImage) with a stand-in connection whose framebuffer (a real
:class:`~rdesk.client.framebuffer.Framebuffer`) holds 1920x1080 of noise, and prints the mean
time per update, including Tk's redisplay (``update_idletasks``). ``RDESK_VIEWER_PAINT=photo``
measures the photo path (docs/viewer.md).
"""

from __future__ import annotations

import os
import time
import tkinter
import types
from pathlib import Path

from PIL import Image

from rdesk.client.framebuffer import Framebuffer
from rdesk.client.tk.viewport import Mode
from rdesk.client.tk.window import ViewerOptions, ViewerWindow

W, H = 1920, 1080
SIZES = [(64, 64), (128, 64), (256, 256), (592, 336), (960, 540), (W, H)]


def main() -> None:
    root = tkinter.Tk()
    modes: list[tuple[Mode, tuple[int, int]]] = [("1", (W, H)), ("fit", (1280, 720))]
    for mode, window in modes:
        view = ViewerWindow(root, ViewerOptions("127.0.0.1:1", Path("/nonexistent"), scale=mode))
        fb = Framebuffer(W, H)
        fb.image.paste(Image.effect_noise((W, H), 60).convert("RGB"))
        view.conn = types.SimpleNamespace(  # type: ignore[assignment]
            framebuffer=fb, width=W, height=H, role="control", stats=None
        )
        root.geometry(f"{window[0]}x{window[1]}")
        root.update()
        view._paint()
        root.update()
        path = "MIT-SHM" if getattr(view.screen, "direct", None) else "photo"
        chosen = os.environ.get("RDESK_VIEWER_PAINT", "auto")
        print(f"paint {path} ({chosen}), scale {mode}: window {window[0]}x{window[1]}, display "
              f"{view.viewport.display_size[0]}x{view.viewport.display_size[1]}")
        for w, h in SIZES:
            n = 200 if w * h < 300_000 else 40
            start = time.perf_counter()
            for i in range(n):
                x = (i * 97) % (W - w + 1)
                y = (i * 53) % (H - h + 1)
                view._on_update([(x, y, w, h)])
                view._paint()
                root.update_idletasks()
            ms = (time.perf_counter() - start) / n * 1000
            print(f"  {w:4d}x{h:<4d}  {ms:6.2f} ms/update  ({1000 / ms:5.0f} updates/s max)")
        view.canvas.destroy()
        for child in list(root.children.values()):
            child.destroy()
    root.destroy()


if __name__ == "__main__":
    main()
