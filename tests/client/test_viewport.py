"""Viewport geometry: fit keeps the aspect ratio, and pointer mapping is exact at every scale."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from PIL import Image

from rdesk.client.tk.viewport import FIT, ONE_TO_ONE, Viewport

sides = st.integers(1, 4000)
small_sides = st.integers(1, 300)
modes = st.sampled_from([FIT, ONE_TO_ONE])


@st.composite
def viewports(draw: st.DrawFn, side: st.SearchStrategy[int] = sides) -> Viewport:
    return Viewport(
        draw(side), draw(side), draw(side), draw(side), draw(modes),
        draw(st.integers(-10, 5000)), draw(st.integers(-10, 5000)),
    )


@example(Viewport(1, 4, 1, 2, FIT, 0, 0))  # both sides touch the window
@given(viewports())
def test_fit_fills_one_side_and_keeps_the_aspect_ratio(vp: Viewport) -> None:
    dw, dh = vp.display_size
    if vp.mode == ONE_TO_ONE:
        assert (dw, dh) == (vp.host_w, vp.host_h)
        return
    assert 1 <= dw <= vp.win_w and 1 <= dh <= vp.win_h
    assert dw == vp.win_w or dh == vp.win_h
    # The other side is the rounded exact value (within one pixel, or 1 when that rounds to 0).
    # When both sides touch the window (e.g. 1x4 into 1x2: 1x2), either may be the filled one.
    height_follows = dw == vp.win_w and (abs(dh - vp.host_h * dw / vp.host_w) <= 1 or dh == 1)
    width_follows = dh == vp.win_h and (abs(dw - vp.host_w * dh / vp.host_h) <= 1 or dw == 1)
    assert height_follows or width_follows


@given(viewports())
def test_every_host_pixel_maps_to_a_window_point_that_maps_back(vp: Viewport) -> None:
    for hx in {0, vp.host_w // 3, vp.host_w // 2, vp.host_w - 1}:
        for hy in {0, vp.host_h // 2, vp.host_h - 1}:
            wx, wy = vp.host_to_window_exact(hx, hy)
            assert vp.window_to_host(wx, wy) == (hx, hy)


@given(viewports(small_sides))
def test_every_host_pixel_exhaustively(vp: Viewport) -> None:
    """All host pixels, at small sizes: the exact inverse, and the integer one when not
    scaled down (then every host pixel is drawn on at least one window pixel)."""
    dw, dh = vp.display_size
    for hx in range(vp.host_w):
        wx, _ = vp.host_to_window_exact(hx, 0)
        assert vp.window_to_host(wx, vp.origin[1])[0] == hx
        if dw >= vp.host_w:
            ix, _ = vp.host_to_window(hx, 0)
            assert vp.window_to_host(ix, vp.origin[1])[0] == hx
    for hy in range(vp.host_h):
        _, wy = vp.host_to_window_exact(0, hy)
        assert vp.window_to_host(vp.origin[0], wy)[1] == hy
        if dh >= vp.host_h:
            _, iy = vp.host_to_window(0, hy)
            assert vp.window_to_host(vp.origin[0], iy)[1] == hy


@given(viewports(small_sides))
def test_window_pixels_map_monotonically_onto_the_screen(vp: Viewport) -> None:
    previous = -1
    for wx in range(-3, vp.win_w + 3):
        hx, _ = vp.window_to_host(wx, 0)
        assert 0 <= hx < vp.host_w
        assert hx >= previous
        previous = hx


@given(viewports(small_sides), st.data())
def test_dirty_rect_covers_exactly_the_pixels_that_sample_it(vp: Viewport, data: st.DataObject
                                                            ) -> None:
    x = data.draw(st.integers(0, vp.host_w - 1))
    y = data.draw(st.integers(0, vp.host_h - 1))
    w = data.draw(st.integers(1, vp.host_w - x))
    h = data.draw(st.integers(1, vp.host_h - y))
    x0, y0, x1, y1 = vp.host_rect_to_display(x, y, w, h)
    ox, oy = vp.origin
    dw, dh = vp.display_size
    for d in range(dw):
        hx, _ = vp.window_to_host(ox + d, oy)
        assert (x0 <= d < x1) == (x <= hx < x + w)
    for d in range(dh):
        _, hy = vp.window_to_host(ox, oy + d)
        assert (y0 <= d < y1) == (y <= hy < y + h)


def test_pointer_lands_on_the_pixel_drawn_there_nearest() -> None:
    """What the window draws under a pixel (nearest-neighbour) is the pixel it maps to."""
    host = Image.new("RGB", (37, 23))
    host.putdata([(x, y, 0) for y in range(23) for x in range(37)])
    for win in [(100, 80), (20, 15), (37, 23), (50, 500)]:
        vp = Viewport(37, 23, *win)
        drawn = host.resize(vp.display_size, Image.Resampling.NEAREST)
        ox, oy = vp.origin
        for dy in range(drawn.height):
            for dx in range(drawn.width):
                r, g, _ = drawn.getpixel((dx, dy))  # type: ignore[misc]
                assert vp.window_to_host(ox + dx, oy + dy) == (r, g)


def test_region_resize_matches_the_whole_resize() -> None:
    """Painting a dirty region with resize(box=...) gives the pixels of the whole scaled image."""
    host = Image.effect_noise((200, 150), 80).convert("RGB")
    vp = Viewport(200, 150, 130, 130)
    whole = host.resize(vp.display_size, Image.Resampling.BOX)
    x0, y0, x1, y1 = vp.host_rect_to_display(40, 30, 64, 32)
    part = host.resize((x1 - x0, y1 - y0), Image.Resampling.BOX,
                       box=vp.display_to_host_box(x0, y0, x1, y1))
    expected = whole.crop((x0, y0, x1, y1))
    delta = np.abs(np.asarray(part, np.int16) - np.asarray(expected, np.int16))
    assert delta.max() <= 1


def test_one_to_one_scrolls_and_clamps() -> None:
    vp = Viewport(1920, 1080, 800, 600, ONE_TO_ONE)
    assert vp.max_scroll == (1120, 480)
    vp = vp.scrolled(5000, -3)
    assert (vp.scroll_x, vp.scroll_y) == (1120, 0)
    assert vp.origin == (-1120, 0)
    assert vp.window_to_host(0, 0) == (1120, 0)
    assert vp.window_to_host(799, 599) == (1919, 599)
    (fx0, fx1), _ = vp.scroll_fractions()
    assert fx1 == 1.0 and fx0 == pytest.approx(1120 / 1920)


def test_small_screen_is_centred() -> None:
    vp = Viewport(640, 480, 1000, 500, ONE_TO_ONE)
    assert vp.origin == (180, 10)
    assert vp.window_to_host(180, 10) == (0, 0)
    assert vp.window_to_host(0, 0) == (0, 0)  # clamped
    fit = Viewport(640, 480, 1000, 500)
    assert fit.display_size == (667, 500) and fit.origin == (166, 0)


@given(sides, sides, sides, sides)
def test_mode_change_resets_scroll(hw: int, hh: int, ww: int, wh: int) -> None:
    assume(hw > ww)
    vp = Viewport(hw, hh, ww, wh, ONE_TO_ONE).scrolled(10**6, 0)
    assert vp.scroll_x == hw - ww
    assert vp.with_mode(FIT).scroll_x == 0


def test_invalid() -> None:
    with pytest.raises(ValueError):
        Viewport(0, 1, 1, 1)
    with pytest.raises(ValueError):
        Viewport(1, 1, 1, 0)
    with pytest.raises(ValueError):
        Viewport(1, 1, 1, 1, "2")  # type: ignore[arg-type]
