"""Fit mode's scaling through libyuv (rdesk/client/tk/scaling.py): against Pillow's resize,
partial updates against a whole-frame scale (no seams), odd sizes, the Pillow fallback, and
the real window on Xvfb (MIT-SHM and photo paths)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rdesk.client.pixels import Pixels, mapped_rgb
from rdesk.client.tk import paint, scaling
from rdesk.client.tk.direct import ENV
from rdesk.client.tk.viewport import Viewport
from tests.client.test_tk_direct_paint import Opened, opened, shown  # noqa: F401

pytestmark = pytest.mark.skipif(scaling.scaler() is None, reason="libyuv is not installed")

#: Host screen, window: downscales at even and odd ratios, odd sizes, an upscale.
SIZES = [(1920, 1080, 1280, 720), (800, 600, 320, 300), (801, 601, 333, 250),
         (637, 419, 1000, 700), (97, 61, 50, 40)]


def smooth(w: int, h: int, seed: int) -> Image.Image:
    """Screen-like content a filter can be compared on: random colours, smoothly blended
    (on noise, two good filters differ by half the range)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3), np.uint8)
    return Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BICUBIC)


def screen(w: int, h: int, seed: int) -> tuple[Image.Image, Pixels]:
    image, pixels = mapped_rgb(w, h)
    assert pixels is not None  # this Pillow maps RGB (tests/client/test_video_into_...)
    image.paste(smooth(w, h, seed))
    return image, pixels


def array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def assert_close(got: Image.Image, want: Image.Image) -> None:
    """Within what two bilinear/box filters differ by on smooth content (measured: mean
    about 2.3 levels, max 10-14; a shifted or mirrored scale is off by far more)."""
    assert got.size == want.size
    diff = np.abs(array(got) - array(want))
    assert diff.mean() < 4, diff.mean()
    assert diff.max() <= 40, diff.max()


@pytest.mark.parametrize(("hw", "hh", "ww", "wh"), SIZES)
def test_libyuv_scale_is_close_to_pillows_box_resize(hw: int, hh: int, ww: int,
                                                     wh: int) -> None:
    image, pixels = screen(hw, hh, 1)
    vp = Viewport(hw, hh, ww, wh, "fit")
    whole = (0, 0, *vp.display_size)
    assert_close(paint.render(image, vp, whole, pixels), paint.render(image, vp, whole))


@pytest.mark.parametrize(("hw", "hh", "ww", "wh"), SIZES)
def test_a_box_is_exactly_that_box_of_the_whole_scale(hw: int, hh: int, ww: int,
                                                      wh: int) -> None:
    _image, pixels = screen(hw, hh, 2)
    vp = Viewport(hw, hh, ww, wh, "fit")
    dw, dh = vp.display_size
    whole = scaling.render(pixels, vp, (0, 0, dw, dh))
    for box in [(0, 0, dw, dh), (1, 1, dw - 1, dh - 1), (dw // 3, dh // 5, dw // 3 + 7, dh - 3),
                (dw - 1, dh - 1, dw, dh), (0, dh // 2, dw, dh // 2 + 1)]:
        assert scaling.render(pixels, vp, box).tobytes() == whole.crop(box).tobytes(), box


@pytest.mark.parametrize("use_libyuv", [True, False])
@pytest.mark.parametrize(("hw", "hh", "ww", "wh"), SIZES)
def test_partial_updates_leave_no_seams(hw: int, hh: int, ww: int, wh: int,
                                        use_libyuv: bool) -> None:
    """Old frame scaled whole, then only plan()'s boxes of an update repainted: exactly the
    new frame scaled whole (the boxes reach every display pixel the change filters into)."""
    image, pixels = screen(hw, hh, 3)
    mem = pixels if use_libyuv else None
    vp = Viewport(hw, hh, ww, wh, "fit")
    whole = (0, 0, *vp.display_size)
    drawn = paint.render(image, vp, whole, mem).copy()
    rects = [(hw // 7 + 1, hh // 5 + 3, hw // 9 + 2, hh // 7 + 1), (0, 0, 3, 2),
             (hw - 5, hh - 3, 5, 3), (hw // 2, 0, 1, hh)]
    for seed, (x, y, w, h) in enumerate(rects, 10):
        image.paste(smooth(w, h, seed), (x, y))
    boxes = paint.plan(vp, rects)
    assert boxes is not None  # small: painted box by box
    for box in boxes:
        drawn.paste(paint.render(image, vp, box, mem), box[:2])
    assert drawn.tobytes() == paint.render(image, vp, whole, mem).tobytes()


def test_reach_widens_only_when_scaled() -> None:
    one = Viewport(100, 80, 100, 80, "1")
    assert paint.reach(one, (10, 20, 5, 6)) == (10, 20, 15, 26)
    fit = Viewport(300, 200, 150, 100, "fit")
    assert paint.reach(fit, (0, 0, 300, 200)) == (0, 0, 150, 100)  # clamped to the display
    x0, y0, x1, y1 = paint.reach(fit, (100, 100, 2, 2))
    assert (x0, y0) <= (49, 49) and (x1, y1) >= (51, 51)
    assert paint.reach(fit, (10, 10, 0, 5)) == (0, 0, 0, 0)


def test_boxes_outside_the_display_are_refused() -> None:
    _image, pixels = screen(64, 48, 4)
    vp = Viewport(64, 48, 32, 24, "fit")
    with pytest.raises(ValueError):
        scaling.render(pixels, vp, (0, 0, 33, 24))
    with pytest.raises(ValueError):
        scaling.render(pixels, Viewport(65, 48, 32, 24, "fit"), (0, 0, 4, 4))


def put(view: object, fb: object, image: Image.Image,
        rect: tuple[int, int, int, int] | None = None) -> None:
    """New content in ``rect`` (default: everything), painted by the window's tick."""
    x, y, w, h = rect or (0, 0, *fb.size)  # type: ignore[attr-defined]
    fb.image.paste(image.crop((x, y, x + w, y + h)), (x, y))  # type: ignore[attr-defined]
    view._on_update([(x, y, w, h)])  # type: ignore[attr-defined]
    view._paint()  # type: ignore[attr-defined]
    view.root.update()  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["auto", "photo"])
def test_window_fit_paint_matches_pillow_and_has_no_seams(
    opened: Opened, monkeypatch: pytest.MonkeyPatch, path: str  # noqa: F811
) -> None:
    monkeypatch.setenv(ENV, path)
    view, fb = opened(801, 601, 333, 300, "fit")
    assert view.viewport.scaled and fb.pixels is not None
    assert (view.screen.direct is not None) == (path == "auto")
    vp = view.viewport
    whole = (0, 0, *vp.display_size)
    put(view, fb, smooth(801, 601, 5))
    assert_close(shown(view), paint.render(fb.image, vp, whole))  # Pillow's resize
    # Partial updates at odd offsets: the window shows exactly a whole-frame scale.
    for seed, rect in enumerate([(101, 99, 333, 257), (0, 0, 17, 9), (790, 590, 11, 11),
                                 (400, 3, 1, 598)], 6):
        put(view, fb, smooth(801, 601, seed), rect)
    assert shown(view).tobytes() == paint.render(fb.image, vp, whole, fb.pixels).tobytes()


def test_window_without_libyuv_falls_back_to_pillow(
    opened: Opened, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setattr(scaling, "scaler", lambda: None)  # as on a machine without libyuv
    view, fb = opened(640, 400, 320, 240, "fit")
    assert view.screen.direct is not None  # MIT-SHM still: only the scaling falls back
    put(view, fb, smooth(640, 400, 7))
    put(view, fb, smooth(640, 400, 8), (33, 41, 201, 99))
    vp = view.viewport
    want = paint.render(fb.image, vp, (0, 0, *vp.display_size))
    assert not scaling.usable(fb.image, fb.pixels, vp)
    got = shown(view)
    # Pillow's box resize, box by box: as the whole within a level (its fractional boxes).
    assert np.abs(array(got) - array(want)).max() <= 1
