"""Real-X tests of capture (mss) and the DAMAGE watcher, on a private Xvfb."""

from __future__ import annotations

import select
import shutil
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest
from Xlib import X
from Xlib import display as xdisplay

from rdesk.host.capture import CaptureError, Capturer, MssCapturer
from rdesk.host.damage import DamageUnavailable, DamageWatcher


def _xsetroot(display: str, colour: str) -> None:
    if shutil.which("xsetroot") is None:
        pytest.skip("xsetroot not installed")
    subprocess.run(["xsetroot", "-display", display, "-solid", colour], check=True)


@pytest.fixture
def capturer(_host_xvfb: str) -> Iterator[MssCapturer]:
    cap = MssCapturer(_host_xvfb)
    try:
        yield cap
    finally:
        cap.close()


def test_grab_shape_and_contract(capturer: MssCapturer) -> None:
    assert isinstance(capturer, Capturer)
    assert (capturer.width, capturer.height) == (640, 480)
    frame = capturer.grab()
    assert frame.shape == (480, 640, 4)
    assert frame.dtype == np.uint8
    assert frame.flags.c_contiguous


def test_grab_sees_root_colour(_host_xvfb: str, capturer: MssCapturer) -> None:
    _xsetroot(_host_xvfb, "#123456")
    frame = capturer.grab()
    # BGRA: blue first.
    assert (frame[:, :, :3] == np.array([0x56, 0x34, 0x12], dtype=np.uint8)).all()


def test_grabs_are_independent(_host_xvfb: str, capturer: MssCapturer) -> None:
    _xsetroot(_host_xvfb, "#000000")
    first = capturer.grab()
    kept = first.copy()
    _xsetroot(_host_xvfb, "#ffffff")
    second = capturer.grab()
    assert np.array_equal(first, kept), "a later grab must not overwrite an earlier frame"
    assert not np.array_equal(first[:, :, :3], second[:, :, :3])


def test_window_pixels(_host_xvfb: str, capturer: MssCapturer) -> None:
    _xsetroot(_host_xvfb, "#000000")
    dpy = xdisplay.Display(_host_xvfb)
    try:
        screen = dpy.screen()
        win = screen.root.create_window(
            100, 50, 40, 30, 0, screen.root_depth, background_pixel=0xFF0000
        )
        win.map()
        dpy.sync()
        deadline = time.monotonic() + 5
        while True:
            frame = capturer.grab()
            if (frame[50:80, 100:140, 2] == 0xFF).all() or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert (frame[50:80, 100:140, :3] == np.array([0, 0, 0xFF], dtype=np.uint8)).all()
        assert (frame[:50, :, :3] == 0).all()
        win.destroy()
        dpy.sync()
    finally:
        dpy.close()


def test_bad_display_is_a_clear_error() -> None:
    with pytest.raises(CaptureError, match=r"cannot open display :987 .*--virtual"):
        MssCapturer(":987")
    with pytest.raises(DamageUnavailable):
        DamageWatcher(":987")


def test_resize_is_followed(_host_xvfb: str, capturer: MssCapturer) -> None:
    if shutil.which("xrandr") is None:
        pytest.skip("xrandr not installed")
    done = subprocess.run(
        ["xrandr", "-display", _host_xvfb, "--fb", "320x240"], capture_output=True, check=False
    )
    if done.returncode != 0:
        reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["?"])[0]
        pytest.skip(f"this Xvfb cannot resize: {reason}")
    try:
        frame = capturer.grab()
        assert frame.shape == (240, 320, 4)
        assert (capturer.width, capturer.height) == (320, 240)
    finally:
        subprocess.run(
            ["xrandr", "-display", _host_xvfb, "--fb", "640x480"], capture_output=True, check=False
        )
    assert capturer.grab().shape == (480, 640, 4)


def _wait_readable(watcher: DamageWatcher, timeout: float) -> None:
    select.select([watcher.fileno()], [], [], timeout)


def _settle(watcher: DamageWatcher) -> None:
    """Consume damage left over from setup until the screen is quiet."""
    for _ in range(50):
        _wait_readable(watcher, 0.05)
        if not watcher.poll():
            return
    pytest.fail("screen never became still")


def test_damage_reports_painting_and_stillness(_host_xvfb: str, capturer: MssCapturer) -> None:
    with DamageWatcher(_host_xvfb) as watcher:
        _settle(watcher)
        # Still screen: nothing, even across a capture (reading pixels makes no damage).
        capturer.grab()
        _wait_readable(watcher, 0.2)
        assert watcher.poll() is False

        dpy = xdisplay.Display(_host_xvfb)
        try:
            screen = dpy.screen()
            win = screen.root.create_window(
                10, 10, 100, 100, 0, screen.root_depth, background_pixel=screen.white_pixel
            )
            win.map()
            dpy.sync()
            _settle(watcher)

            gc = win.create_gc(foreground=screen.black_pixel)
            win.fill_rectangle(gc, 5, 5, 20, 10)
            dpy.sync()
            _wait_readable(watcher, 2.0)
            assert watcher.poll() is True
            _wait_readable(watcher, 0.2)
            assert watcher.poll() is False

            # Repeated damage keeps being reported (the region was reset by poll).
            win.fill_rectangle(gc, 30, 30, 5, 5)
            dpy.sync()
            _wait_readable(watcher, 2.0)
            assert watcher.poll() is True
            win.destroy()
            dpy.sync()
        finally:
            dpy.close()


def test_damage_watcher_close_is_idempotent(_host_xvfb: str) -> None:
    watcher = DamageWatcher(_host_xvfb)
    watcher.close()
    watcher.close()
    with pytest.raises(RuntimeError):
        watcher.poll()


def test_pixel_exact_roundtrip_xlib(_host_xvfb: str, capturer: MssCapturer) -> None:
    """Pixels drawn with X requests come back byte-exact (no colour conversion on capture)."""
    dpy = xdisplay.Display(_host_xvfb)
    try:
        screen = dpy.screen()
        root = screen.root
        gc = root.create_gc(foreground=0x0A0B0C, subwindow_mode=X.IncludeInferiors)
        root.fill_rectangle(gc, 0, 0, 8, 8)
        dpy.sync()
        frame = capturer.grab()
        assert (frame[0:8, 0:8, :3] == np.array([0x0C, 0x0B, 0x0A], dtype=np.uint8)).all()
    finally:
        dpy.close()
