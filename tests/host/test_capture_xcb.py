"""Real-X tests of the xcb grab and DAMAGE path (rdesk/host/screen/xcb.py) against python-xlib's,
on a private Xvfb: the same pixels, changes reported once and seen by the grab that follows,
events read along with a reply not lost, a dead server a one-line error."""

from __future__ import annotations

import select
from collections.abc import Iterator

import numpy as np
import pytest
from Xlib import X
from Xlib import display as xdisplay

from rdesk.host.screen import xcb
from rdesk.host.screen.capture import CaptureError
from rdesk.host.screen.damage import DamageWatcher, watch_changes
from rdesk.host.screen.xcb import XcbDamage
from rdesk.host.screen.xshm import ShmCapturer
from tests.xserver import Xvfb


@pytest.fixture
def fast(_host_xvfb: str) -> Iterator[ShmCapturer]:
    cap = ShmCapturer(_host_xvfb)
    if cap.xcb is None:
        cap.close()
        pytest.skip("libxcb with its SHM and DAMAGE libraries is not installed")
    try:
        yield cap
    finally:
        cap.close()


def _put_random(display: str, seed: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Random pixels put on the root at ``box`` (x, y, w, h); the BGRX bytes drawn."""
    x, y, w, h = box
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    pixels[..., 3] = 0
    dpy = xdisplay.Display(display)
    try:
        root = dpy.screen().root
        gc = root.create_gc(subwindow_mode=X.IncludeInferiors)
        step = max(1, 60_000 // w)  # rows per PutImage: python-xlib sends no big requests
        for top in range(0, h, step):
            rows = pixels[top:top + step]
            root.put_image(gc, x, y + top, w, len(rows), X.ZPixmap, 24, 0, rows.tobytes())
        dpy.sync()
    finally:
        dpy.close()
    return pixels


def _wait_readable(fd: int, timeout: float) -> None:
    select.select([fd], [], [], timeout)


def _settle(watcher: XcbDamage) -> None:
    for _ in range(50):
        _wait_readable(watcher.fileno(), 0.05)
        if not watcher.poll():
            return
    pytest.fail("screen never became still")


def test_xcb_grab_equals_python_xlib_grab(_host_xvfb: str, fast: ShmCapturer) -> None:
    """Random pixels over the whole screen and at odd places: the xcb grab is python-xlib's
    grab byte for byte (colour channels), and both are what was drawn."""
    drawn = [(_put_random(_host_xvfb, 1, (0, 0, 640, 480)), (0, 0, 640, 480)),
             (_put_random(_host_xvfb, 2, (13, 7, 101, 33)), (13, 7, 101, 33))]
    with ShmCapturer(_host_xvfb, use_xcb=False) as slow:
        assert slow.xcb is None and slow.connection is not None
        a, b = fast.grab(), slow.grab()
    assert a.shape == b.shape == (480, 640, 4)
    assert np.array_equal(a[..., :3], b[..., :3])
    for pixels, (x, y, w, h) in drawn[1:]:
        assert np.array_equal(a[y:y + h, x:x + w, :3], pixels[..., :3])
    first = drawn[0][0]
    assert np.array_equal(a[100:, :, :3], first[100:, :, :3])  # below the second block


def test_xcb_frames_held_are_never_written(_host_xvfb: str, fast: ShmCapturer) -> None:
    held = []
    for seed in range(4):
        pixels = _put_random(_host_xvfb, 10 + seed, (0, 0, 64, 64))
        held.append((fast.grab(), pixels))
    for frame, pixels in held:
        assert np.array_equal(frame[:64, :64, :3], pixels[..., :3])
    assert fast.connection is None  # DAMAGE must not go on python-xlib's connection


def test_watch_changes_takes_the_grabs_connection(_host_xvfb: str, fast: ShmCapturer) -> None:
    """xcb grabs: DAMAGE on the same xcb link; python-xlib grabs: on python-xlib's connection."""
    watcher = watch_changes(_host_xvfb, fast)
    try:
        assert isinstance(watcher, XcbDamage)
    finally:
        watcher.close()
    with ShmCapturer(_host_xvfb, use_xcb=False) as slow:
        other = watch_changes(_host_xvfb, slow)
        try:
            assert isinstance(other, DamageWatcher) and not other._owned
        finally:
            other.close()


def test_xcb_damage_reports_each_painting_once_before_the_grab(
        _host_xvfb: str, fast: ShmCapturer) -> None:
    """Each painting is reported once, the reset goes out ahead of the grab that follows on
    the same connection, and that grab has the painting; a grab makes no damage."""
    with watch_changes(_host_xvfb, fast) as watcher:
        assert isinstance(watcher, XcbDamage)
        _settle(watcher)
        fast.grab()
        _wait_readable(watcher.fileno(), 0.2)
        assert watcher.pending() is False and watcher.poll() is False
        for seed in (21, 22, 23):
            pixels = _put_random(_host_xvfb, seed, (0, 0, 32, 32))
            _wait_readable(watcher.fileno(), 2.0)
            assert watcher.pending() is True
            assert watcher.pending() is True  # asking twice consumes nothing
            assert watcher.poll() is True
            frame = fast.grab()
            assert np.array_equal(frame[:32, :32, :3], pixels[..., :3])
            _wait_readable(watcher.fileno(), 0.2)
            assert watcher.poll() is False
        assert fast.grab().shape == (480, 640, 4)  # closing the watcher leaves the link open


def test_xcb_damage_read_along_with_a_reply_is_not_lost(
        _host_xvfb: str, fast: ShmCapturer) -> None:
    """Damage arriving while a grab waits for its reply is read off the socket with it, into
    xcb's queue: the socket is then quiet, yet ``pending`` and ``poll`` still see it."""
    with watch_changes(_host_xvfb, fast) as watcher:
        assert isinstance(watcher, XcbDamage)
        _settle(watcher)
        _put_random(_host_xvfb, 31, (100, 100, 50, 50))
        _wait_readable(watcher.fileno(), 2.0)
        fast.grab()  # reads the damage event ahead of its reply
        readable, _, _ = select.select([watcher.fileno()], [], [], 0)
        assert not readable, "the event should have been read with the reply"
        assert watcher.pending() is True
        assert watcher.poll() is True
        _wait_readable(watcher.fileno(), 0.2)
        assert watcher.poll() is False


def test_xcb_damage_close_is_idempotent(_host_xvfb: str, fast: ShmCapturer) -> None:
    watcher = watch_changes(_host_xvfb, fast)
    watcher.close()
    watcher.close()
    with pytest.raises(RuntimeError):
        watcher.poll()
    with pytest.raises(RuntimeError):
        watcher.pending()


def test_dead_x_server_is_a_one_line_error_and_a_clean_close() -> None:
    """The server goes away under an xcb capturer and its watcher: the watcher says "look"
    (so the capture loop grabs), the grab raises a one-line CaptureError, closing raises
    nothing."""
    server = Xvfb(320, 240).start()
    try:
        cap = ShmCapturer(server.display)
        if cap.xcb is None:
            cap.close()
            pytest.skip("libxcb with its SHM and DAMAGE libraries is not installed")
        watcher = watch_changes(server.display, cap)
        assert cap.grab().shape == (240, 320, 4)
    finally:
        server.stop()
    assert watcher.poll() is True and watcher.pending() is True
    with pytest.raises(CaptureError) as caught:
        cap.grab()
    message = str(caught.value)
    assert "\n" not in message and server.display in message
    watcher.close()
    cap.close()
    cap.close()


def test_without_the_xcb_libraries_grabs_go_through_python_xlib(
        _host_xvfb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xcb, "_libraries", lambda: None)
    with ShmCapturer(_host_xvfb) as cap:
        assert cap.xcb is None and cap.connection is not None
        pixels = _put_random(_host_xvfb, 41, (5, 5, 20, 20))
        assert np.array_equal(cap.grab()[5:25, 5:25, :3], pixels[..., :3])
        watcher = watch_changes(_host_xvfb, cap)
        try:
            assert isinstance(watcher, DamageWatcher)
        finally:
            watcher.close()
