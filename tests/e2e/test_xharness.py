"""Self-tests of the X test harness: Xvfb, the painter and recorder clients, direct reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.xclients.painter import make_pattern
from tests.xserver import (
    Painter,
    Recorder,
    Xvfb,
    assert_images_equal,
    assert_nothing_held,
    grab_root,
    keysym_to_keycode,
    pointer_buttons,
    pressed_keys,
    run_xdotool,
    wait_until,
)


def test_xvfb_starts_with_requested_size(xvfb_factory) -> None:
    server = xvfb_factory(320, 200)
    assert server.display.startswith(":")
    assert server.env["DISPLAY"] == server.display
    out = subprocess.run(
        ["xdpyinfo"], env=server.env, capture_output=True, text=True, check=False
    ).stdout
    if out:  # xdpyinfo (x11-utils) is optional
        assert "320x200 pixels" in out
        assert "XTEST" in out and "DAMAGE" in out
    assert grab_root(server.display).size == (320, 200)


def test_xvfb_stops_on_exit() -> None:
    with Xvfb(64, 64) as server:
        proc = server.proc
        assert proc is not None and proc.poll() is None
    assert proc.poll() is not None


def test_pattern_is_deterministic_and_detailed() -> None:
    a = make_pattern(200, 130, 5)
    assert a.shape == (130, 200, 3) and a.dtype == np.uint8
    assert np.array_equal(a, make_pattern(200, 130, 5))
    assert not np.array_equal(a, make_pattern(200, 130, 6))
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 100


def test_painter_pixels_match_grab(xvfb: Xvfb) -> None:
    with Painter(xvfb.display, seed=1) as painter:
        expected = painter.expected()
        assert np.array_equal(np.asarray(expected), make_pattern(640, 480, 1))
        assert_images_equal(grab_root(xvfb.display), expected)

        painter.rect(10, 20, 100, 50, (255, 0, 0))
        painter.rect(600, 440, 100, 100, "00ff7f")  # clipped at the screen edge
        grabbed = grab_root(xvfb.display)
        assert grabbed.getpixel((10, 20)) == (255, 0, 0)
        assert grabbed.getpixel((109, 69)) == (255, 0, 0)
        assert grabbed.getpixel((639, 479)) == (0, 255, 127)
        assert_images_equal(grabbed, painter.expected())

        painter.image(2)
        assert_images_equal(grab_root(xvfb.display), Image.fromarray(make_pattern(640, 480, 2)))
        box = grab_root(xvfb.display, (64, 64, 128, 32))
        assert_images_equal(box, painter.expected().crop((64, 64, 192, 96)))


def test_painter_odd_screen_size(xvfb_factory) -> None:
    server = xvfb_factory(1000, 333)
    with Painter(server.display, seed=9) as painter:
        assert_images_equal(grab_root(server.display), painter.expected())


def test_painter_repaints_after_overlap(xvfb: Xvfb) -> None:
    with Painter(xvfb.display, seed=4) as painter:
        with Recorder(xvfb.display, geometry="200x100+50+60"):
            assert grab_root(xvfb.display).getpixel((60, 70)) == (0x30, 0x30, 0x30)
        assert wait_until(
            lambda: np.array_equal(
                np.asarray(grab_root(xvfb.display)), np.asarray(painter.expected())
            ),
            timeout=5,
        )


def test_recorder_keys(xvfb: Xvfb) -> None:
    with Recorder(xvfb.display) as rec:
        run_xdotool(xvfb.display, "key", "--window", str(rec.window), "a", "shift+b", "Return")
        rec.wait_for(lambda e: e["type"] == "key_release" and e["keysym_name"] == "Return")
        presses = [e for e in rec.key_presses() if e["keysym_name"] != "Shift_L"]
        assert [e["keysym_name"] for e in presses] == ["a", "B", "Return"]
        assert [e["keysym"] for e in presses] == [ord("a"), ord("B"), 0xFF0D]
        assert [e["text"] for e in presses] == ["a", "B", "\r"]
        assert presses[1]["state"] & 1  # ShiftMask
        assert rec.typed_text() == "aB\r"
        assert rec.held_keys() == set()

        rec.clear()
        run_xdotool(xvfb.display, "type", "Hello, World!")
        assert rec.wait_for_text("Hello, World!") == "Hello, World!"
        names = [n for n in rec.keysym_names() if n != "Shift_L"]
        assert names[:3] == ["H", "e", "l"]
        assert "comma" in names and "exclam" in names
    assert_nothing_held(xvfb.display)


def test_recorder_click(xvfb: Xvfb) -> None:
    with Recorder(xvfb.display) as rec:
        run_xdotool(xvfb.display, "mousemove", "10", "20", "click", "3")
        release = rec.wait_for(lambda e: e["type"] == "button_release")
        assert rec.buttons() == [(3, 10, 20)]
        assert (release["button"], release["x"], release["y"]) == (3, 10, 20)
        assert (10, 20) in rec.motions()
    assert pointer_buttons(xvfb.display) == 0


def test_recorder_geometry_and_window_coordinates(xvfb: Xvfb) -> None:
    with Recorder(xvfb.display, geometry="300x200+100+50", override_redirect=True) as rec:
        assert rec.geometry == (100, 50, 300, 200)
        run_xdotool(xvfb.display, "mousemove", "150", "60", "click", "1")
        press = rec.wait_for(lambda e: e["type"] == "button_press")
        assert (press["x"], press["y"], press["win_x"], press["win_y"]) == (150, 60, 50, 10)


def test_recorder_flash(xvfb: Xvfb) -> None:
    with Recorder(xvfb.display, flash=True, no_motion=True) as rec:
        assert grab_root(xvfb.display).getpixel((5, 5)) == (255, 0, 0)
        run_xdotool(xvfb.display, "key", "x")
        press = rec.wait_for(lambda e: e["type"] == "key_press")
        assert press["flash"] == "00ff00"
        assert grab_root(xvfb.display).getpixel((5, 5)) == (0, 255, 0)


def test_pressed_keys_and_buttons(xvfb: Xvfb) -> None:
    assert pressed_keys(xvfb.display) == []
    assert pointer_buttons(xvfb.display) == 0
    shift = keysym_to_keycode(xvfb.display, "Shift_L")
    assert shift
    run_xdotool(xvfb.display, "keydown", "shift")
    try:
        assert shift in pressed_keys(xvfb.display)
    finally:
        run_xdotool(xvfb.display, "keyup", "shift")
    assert pressed_keys(xvfb.display) == []

    run_xdotool(xvfb.display, "mousedown", "1")
    try:
        assert pointer_buttons(xvfb.display) == 1 << 8  # Button1Mask
    finally:
        run_xdotool(xvfb.display, "mouseup", "1")
    assert_nothing_held(xvfb.display)


@pytest.mark.parametrize("script", ["painter", "recorder"])
def test_clients_run_as_modules(xvfb: Xvfb, script: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", f"tests.xclients.{script}", "--help"],
        env=xvfb.env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout
