"""The viewer window's direct paint (MIT-SHM into the canvas's window) on a real Tk and Xvfb.

The window's pixels are read back from the X server (``grab_root``: XGetImage of the root,
independent of rdesk) and compared with the framebuffer: 1:1, fitted, scrolled, after being
covered and uncovered, after a framebuffer resize, under the overlay; and the photo fallback
(``RDESK_VIEWER_PAINT=photo``) must give the same pixels.
"""

from __future__ import annotations

import io
import tkinter
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rdesk.client.framebuffer import Framebuffer
from rdesk.client.tk import paint
from rdesk.client.tk.direct import ENV
from rdesk.client.tk.viewport import Mode
from rdesk.client.tk.window import ViewerOptions, ViewerWindow
from rdesk.protocol.cursor import CursorShape
from tests.xserver import assert_images_equal, grab_root

Opened = Callable[..., tuple[ViewerWindow, Framebuffer]]


@pytest.fixture
def opened(tk_display: str, tmp_path: Path) -> Iterator[Opened]:
    """``opened(host_w, host_h, win_w, win_h, mode)``: a window at +0+0 showing a
    framebuffer of noise, painted once (the photo, whole); it closes the one before."""
    roots: list[tkinter.Tk] = []

    def make(host_w: int, host_h: int, win_w: int, win_h: int,
             mode: Mode = "1") -> tuple[ViewerWindow, Framebuffer]:
        while roots:  # one Tk at a time: photos are made in tkinter's default root
            roots.pop().destroy()
        root = tkinter.Tk(screenName=tk_display)
        roots.append(root)
        view = ViewerWindow(root, ViewerOptions("127.0.0.1:1", tmp_path / "kh", scale=mode))
        fb = Framebuffer(host_w, host_h)
        fb.image.paste(noise(host_w, host_h, 1))
        view.conn = types.SimpleNamespace(  # type: ignore[assignment]
            framebuffer=fb, width=host_w, height=host_h, role="control",
            stats=types.SimpleNamespace(updates=0, bytes=0, rtt=None), cursor=None)
        root.geometry(f"{win_w}x{win_h}+0+0")
        root.update()
        view._paint()
        root.update()
        return view, fb

    yield make
    for root in roots:
        root.destroy()


def noise(w: int, h: int, seed: int) -> Image.Image:
    """Content not designed to be easy: every channel of every pixel random (seeded)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8), "RGB")


def update(view: ViewerWindow, fb: Framebuffer, seed: int,
           rect: tuple[int, int, int, int] | None = None) -> None:
    """New content in ``rect`` (default: the whole screen), painted by the window's tick."""
    x, y, w, h = rect or (0, 0, *fb.size)
    fb.image.paste(noise(w, h, seed), (x, y))
    view._on_update([(x, y, w, h)])
    view._paint()
    view.root.update()


def shown(view: ViewerWindow) -> Image.Image:
    """The drawn screen as the X server has it in the window (the visible part)."""
    vp = view.viewport
    ox, oy = vp.origin
    x0, y0 = max(0, ox), max(0, oy)
    dw, dh = vp.display_size
    w, h = min(vp.win_w, ox + dw) - x0, min(vp.win_h, oy + dh) - y0
    rx, ry = view.canvas.winfo_rootx(), view.canvas.winfo_rooty()
    return grab_root(view.root.winfo_screen(), (rx + x0, ry + y0, w, h))


def expected(view: ViewerWindow, fb: Framebuffer) -> Image.Image:
    """What the window must show: the framebuffer, scaled as the photo path scales it, and
    cut to the visible part."""
    vp = view.viewport
    whole = paint.render(fb.image, vp, (0, 0, *vp.display_size), fb.pixels).convert("RGB")
    ox, oy = vp.origin
    return whole.crop((max(0, -ox), max(0, -oy), min(vp.display_size[0], vp.win_w - ox),
                       min(vp.display_size[1], vp.win_h - oy)))


def test_one_to_one_update_goes_direct_and_lands_exactly(opened: Opened) -> None:
    view, fb = opened(400, 300, 400, 300)
    update(view, fb, 2)
    assert view.screen.direct is not None
    assert view.screen._stale  # the photo was bypassed
    assert_images_equal(shown(view), expected(view, fb))
    update(view, fb, 3, (37, 21, 201, 143))  # a part, at odd offsets
    assert_images_equal(shown(view), expected(view, fb))


def test_fit_mode_matches_the_photo_paths_scaling(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    view, fb = opened(800, 600, 320, 300, "fit")
    assert view.viewport.scaled
    update(view, fb, 2)
    assert view.screen._stale
    assert_images_equal(shown(view), expected(view, fb))
    # A part: the box filter's edge pixels straddle the rect, so compare with what the photo
    # path shows after the same updates rather than with a whole resize.
    update(view, fb, 4, (101, 99, 333, 257))
    direct = shown(view)
    monkeypatch.setenv(ENV, "photo")
    other, fb2 = opened(800, 600, 320, 300, "fit")
    update(other, fb2, 2)
    update(other, fb2, 4, (101, 99, 333, 257))
    assert other.screen.direct is None
    assert_images_equal(shown(other), direct)


def test_scrolled_one_to_one_puts_only_the_visible_part(opened: Opened) -> None:
    view, fb = opened(600, 450, 300, 200)
    update(view, fb, 2)
    view.screen.on_scroll("x", "moveto", "0.25")
    view.screen.on_scroll("y", "moveto", "0.5")
    view.root.update()
    assert view.viewport.origin[0] < 0 and view.viewport.origin[1] < 0
    view._paint()  # the photo pasted whole after the move (Tk redraws from it)
    view.root.update()
    assert_images_equal(shown(view), expected(view, fb))
    update(view, fb, 5)
    assert_images_equal(shown(view), expected(view, fb))


def test_covered_and_uncovered_shows_the_latest_pixels(opened: Opened) -> None:
    view, fb = opened(400, 300, 400, 300)
    update(view, fb, 2)  # direct: the photo still holds the first content
    cover = tkinter.Toplevel(view.root, background="#ff00ff")
    cover.overrideredirect(True)
    cover.geometry("250x200+60+40")
    view.root.update()
    assert shown(view).getpixel((100, 100)) == (255, 0, 255)
    cover.destroy()
    view.root.update()  # the expose: Tk redraws from the photo, made right first
    assert_images_equal(shown(view), expected(view, fb))


def test_framebuffer_resize(opened: Opened) -> None:
    view, fb = opened(400, 300, 400, 300)
    update(view, fb, 2)
    fb.resize(320, 240)
    view.conn.width, view.conn.height = 320, 240  # type: ignore[union-attr]
    update(view, fb, 3)
    assert view.viewport.display_size == (320, 240)
    assert_images_equal(shown(view), expected(view, fb))
    update(view, fb, 6)
    assert view.screen._stale
    assert_images_equal(shown(view), expected(view, fb))


def test_items_above_the_screen_stay_on_top(opened: Opened) -> None:
    view, fb = opened(400, 300, 400, 300)
    view.toggle_overlay()
    view.root.update()
    update(view, fb, 2)
    x0, y0, x1, y1 = view.canvas.bbox(view.screen.overlay_box)
    got = shown(view)
    # The box's black fill, drawn again by Tk on top of the put (noise is never black here).
    assert got.getpixel((x0 + 2, y0 + 2)) == (0, 0, 0)
    assert got.getpixel((x0 + 2, y1 - 3)) == (0, 0, 0)
    outside = (x1 + 5, y1 + 5, 400, 300)
    assert_images_equal(got.crop(outside), expected(view, fb).crop(outside))


def test_photo_fallback_gives_the_same_pixels(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    view, fb = opened(400, 300, 400, 300)
    update(view, fb, 2)
    direct = shown(view)
    monkeypatch.setenv(ENV, "photo")
    other, fb2 = opened(400, 300, 400, 300)
    update(other, fb2, 2)
    assert other.screen.direct is None and not other.screen._stale
    assert_images_equal(shown(other), direct)


def test_cursor_sprite_moving_over_direct_pixels_leaves_none_stale(opened: Opened) -> None:
    view, fb = opened(400, 300, 400, 300)
    update(view, fb, 2)  # direct: the photo still holds the first content
    png = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 255, 0)).save(png, "PNG")
    data = png.getvalue()
    view.sprite.show((CursorShape(1, 16, 16, 0, 0, len(data)), data))
    green = Image.new("RGB", (16, 16), (0, 255, 0))
    for x, y in ((50, 40), (300, 60), (120, 250)):  # far apart: Tk redraws their bounding box
        update(view, fb, 3 + x, (10, 10, 380, 280))
        view.sprite.moved(x, y)
        view.root.update()
        want = expected(view, fb)
        want.paste(green, (x, y))  # the sprite on top, the rest the latest pixels
        assert_images_equal(shown(view), want)
    view.sprite.left()
    view.root.update()
    assert_images_equal(shown(view), expected(view, fb))
