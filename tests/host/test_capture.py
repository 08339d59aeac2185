"""Real-X tests of capture (zero-copy shared memory, and mss) and the DAMAGE watcher, on a
private Xvfb."""

from __future__ import annotations

import contextlib
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from Xlib import X
from Xlib import display as xdisplay

from rdesk.host.screen import xshm
from rdesk.host.screen.backends import open_capturer
from rdesk.host.screen.capture import CaptureError, Capturer, MssCapturer
from rdesk.host.screen.damage import DamageUnavailable, DamageWatcher
from rdesk.host.screen.xshm import ShmCapturer
from tests.xserver import Xvfb

AnyCapturer = MssCapturer | ShmCapturer


def _xsetroot(display: str, colour: str) -> None:
    if shutil.which("xsetroot") is None:
        pytest.skip("xsetroot not installed")
    subprocess.run(["xsetroot", "-display", display, "-solid", colour], check=True)


def _shm_xlib(display: str) -> ShmCapturer:
    return ShmCapturer(display, use_xcb=False)


# "shm": through libxcb where it is installed (rdesk/host/screen/xcb.py); "shm-xlib": python-xlib.
@pytest.fixture(params=[ShmCapturer, _shm_xlib, MssCapturer], ids=["shm", "shm-xlib", "mss"])
def capturer(_host_xvfb: str, request: pytest.FixtureRequest) -> Iterator[AnyCapturer]:
    cap = request.param(_host_xvfb)
    try:
        yield cap
    finally:
        cap.close()


def test_grab_shape_and_contract(capturer: AnyCapturer) -> None:
    assert isinstance(capturer, Capturer)
    assert (capturer.width, capturer.height) == (640, 480)
    frame = capturer.grab()
    assert frame.shape == (480, 640, 4)
    assert frame.dtype == np.uint8
    assert frame.flags.c_contiguous


def test_grab_sees_root_colour(_host_xvfb: str, capturer: AnyCapturer) -> None:
    _xsetroot(_host_xvfb, "#123456")
    frame = capturer.grab()
    # BGRA: blue first.
    assert (frame[:, :, :3] == np.array([0x56, 0x34, 0x12], dtype=np.uint8)).all()


def test_grabs_are_independent(_host_xvfb: str, capturer: AnyCapturer) -> None:
    _xsetroot(_host_xvfb, "#000000")
    first = capturer.grab()
    kept = first.copy()
    _xsetroot(_host_xvfb, "#ffffff")
    second = capturer.grab()
    assert np.array_equal(first, kept), "a later grab must not overwrite an earlier frame"
    assert not np.array_equal(first[:, :, :3], second[:, :, :3])


def test_window_pixels(_host_xvfb: str, capturer: AnyCapturer) -> None:
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
    for kind in (MssCapturer, ShmCapturer, open_capturer):
        with pytest.raises(CaptureError, match=r"cannot open display :987 .*--virtual"):
            kind(":987")
    with pytest.raises(DamageUnavailable):
        DamageWatcher(":987")


def test_resize_is_followed(_host_xvfb: str, capturer: AnyCapturer) -> None:
    if shutil.which("xrandr") is None:
        pytest.skip("xrandr not installed")
    for _ in range(2):  # Xvfb's RandR often refuses the first --fb and takes the second
        done = subprocess.run(
            ["xrandr", "-display", _host_xvfb, "--fb", "320x240"], capture_output=True, check=False
        )
        if done.returncode == 0:
            break
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
    # A screen that grew is noticed within SIZE_CHECK_INTERVAL.
    deadline = time.monotonic() + 5
    while capturer.grab().shape != (480, 640, 4) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert capturer.grab().shape == (480, 640, 4)


def _wait_readable(watcher: DamageWatcher, timeout: float) -> None:
    select.select([watcher.fileno()], [], [], timeout)


@contextlib.contextmanager
def _white_window(display: str, x: int, y: int, size: int) -> Iterator[tuple[Any, Any]]:
    """A mapped white ``size`` x ``size`` window at (x, y) on its own connection; yields the
    connection and the window, destroyed and closed on exit."""
    dpy = xdisplay.Display(display)
    try:
        screen = dpy.screen()
        win = screen.root.create_window(
            x, y, size, size, 0, screen.root_depth, background_pixel=screen.white_pixel
        )
        win.map()
        dpy.sync()
        yield dpy, win
        win.destroy()
        dpy.sync()
    finally:
        dpy.close()


def _settle(watcher: DamageWatcher) -> None:
    """Consume damage left over from setup until the screen is quiet."""
    for _ in range(50):
        _wait_readable(watcher, 0.05)
        if not watcher.poll():
            return
    pytest.fail("screen never became still")


def test_damage_reports_painting_and_stillness(_host_xvfb: str, capturer: AnyCapturer) -> None:
    with DamageWatcher(_host_xvfb) as watcher:
        _settle(watcher)
        # Still screen: nothing, even across a capture (reading pixels makes no damage).
        capturer.grab()
        _wait_readable(watcher, 0.2)
        assert watcher.poll() is False

        with _white_window(_host_xvfb, 10, 10, 100) as (dpy, win):
            _settle(watcher)
            gc = win.create_gc(foreground=dpy.screen().black_pixel)
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


def test_damage_pending_checks_without_consuming(_host_xvfb: str) -> None:
    """``pending`` tells damage is waiting without draining or resetting it: the poll after
    it still finds the damage, and once drained both say nothing is left."""
    with DamageWatcher(_host_xvfb) as watcher:
        _settle(watcher)
        assert watcher.pending() is False
        with _white_window(_host_xvfb, 20, 20, 50):
            _wait_readable(watcher, 2.0)
            assert watcher.pending() is True
            assert watcher.pending() is True  # asking twice consumes nothing
            assert watcher.poll() is True
        _settle(watcher)
        assert watcher.pending() is False


def test_damage_pending_sees_events_queued_by_a_reply(_host_xvfb: str) -> None:
    """An event python-xlib read along with a reply sits in its queue, not on the socket:
    ``pending`` still reports it (the capture loop would otherwise sleep on a quiet socket
    with the change unseen until the safety poll)."""
    with DamageWatcher(_host_xvfb) as watcher:
        _settle(watcher)
        with _white_window(_host_xvfb, 20, 20, 50):
            _wait_readable(watcher, 2.0)
            watcher._dpy.sync()  # a round trip: its reply read drags the event into the queue
            assert watcher._dpy.display.event_queue
            assert watcher.pending() is True
            assert watcher.poll() is True


def test_damage_watcher_close_is_idempotent(_host_xvfb: str) -> None:
    watcher = DamageWatcher(_host_xvfb)
    watcher.close()
    watcher.close()
    with pytest.raises(RuntimeError):
        watcher.poll()
    with pytest.raises(RuntimeError):
        watcher.pending()


def test_pixel_exact_roundtrip_xlib(_host_xvfb: str, capturer: AnyCapturer) -> None:
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


# --- zero-copy capture: frames are shared memory, reused only when nobody holds them ----------


def _paint(display: str, colour: int) -> None:
    dpy = xdisplay.Display(display)
    try:
        root = dpy.screen().root
        gc = root.create_gc(foreground=colour, subwindow_mode=X.IncludeInferiors)
        root.fill_rectangle(gc, 0, 0, 640, 480)
        dpy.sync()
    finally:
        dpy.close()


def _shm_segments_of_this_process() -> int:
    """Shared-memory segments this process created that still exist (``/proc/sysvipc/shm``)."""
    import os

    with open("/proc/sysvipc/shm") as f:
        header = f.readline().split()
        cpid = header.index("cpid")
        return sum(1 for line in f if int(line.split()[cpid]) == os.getpid())


def test_shm_frames_held_are_never_written(_host_xvfb: str) -> None:
    """Every frame still referenced keeps its pixels while later grabs go on; frames let go
    are reused, so the pool stays small."""
    with ShmCapturer(_host_xvfb) as cap:
        held = []
        for colour in (0x010203, 0x040506, 0x070809, 0x0A0B0C):
            _paint(_host_xvfb, colour)
            held.append((cap.grab()[8:16, 8:16], colour))  # a view keeps its segment too
        for view, colour in held:
            want = np.array([colour & 0xFF, (colour >> 8) & 0xFF, colour >> 16], dtype=np.uint8)
            assert (view[:, :, :3] == want).all()
        pool = len(cap._pool)
        assert pool >= 4
        del held, view
        for _ in range(20):  # nothing held: the same few segments serve every grab
            cap.grab()
        assert len(cap._pool) == pool


def test_shm_grab_requests_are_packed_once_per_segment(_host_xvfb: str) -> None:
    """Each segment's grab is the very request python-xlib would pack for that segment and the
    screen's size (packed once, when the segment is made), and is what a grab sends."""
    from Xlib import X

    with ShmCapturer(_host_xvfb, use_xcb=False) as cap:
        held = [cap.grab(), cap.grab()]  # two segments in use
        assert len(cap._pool) == 2
        for seg in cap._pool:
            want = xshm._GetImage._request.to_binary(
                opcode=cap._opcode, drawable=cap._root, x=0, y=0, width=640, height=480,
                plane_mask=0xFFFFFFFF, format=X.ZPixmap, shmseg=seg.shmseg, offset=0)
            assert seg.get_image is not None
            assert seg.get_image._request.to_binary() == want
        assert held[0] is not held[1]


def test_shm_full_pool_hands_out_copies(_host_xvfb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the pool's byte limit a grab is copied out of a spare segment: still independent."""
    monkeypatch.setattr(xshm, "MAX_POOL_BYTES", 2 * 640 * 480 * 4)
    with ShmCapturer(_host_xvfb) as cap:
        frames = []
        for colour in (0x111111, 0x222222, 0x333333, 0x444444):
            _paint(_host_xvfb, colour)
            frames.append(cap.grab())
        assert len(cap._pool) == 2
        assert [int(f[0, 0, 0]) for f in frames] == [0x11, 0x22, 0x33, 0x44]


def test_shm_memory_is_released(_host_xvfb: str) -> None:
    """Segments are marked for removal as soon as the server has attached them, so none is
    left behind after close (or after a crash); a frame still held stays readable."""
    before = _shm_segments_of_this_process()
    cap = ShmCapturer(_host_xvfb)
    kept = cap.grab()
    cap.grab()
    cap.close()
    cap.close()  # idempotent
    with pytest.raises(CaptureError):
        cap.grab()
    assert kept.shape == (480, 640, 4) and int(kept.sum()) >= 0  # still mapped: no crash
    del kept
    import gc

    gc.collect()
    # Marked-for-removal segments vanish from the table once both sides have detached.
    deadline = time.monotonic() + 10
    while _shm_segments_of_this_process() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _shm_segments_of_this_process() <= before


def test_without_mit_shm_capture_falls_back_to_mss() -> None:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed")
    # In a child process: python-xlib mixes up extension events between displays whose
    # servers have different extensions, and this one lacks MIT-SHM.
    probe = (
        "import sys\n"
        "from rdesk.host.screen.backends import open_capturer\n"
        "from rdesk.host.screen.xshm import ShmCapturer, ShmUnavailable\n"
        "cap = open_capturer(sys.argv[1])\n"
        "print(type(cap).__name__, cap.grab().shape)\n"
        "cap.close()\n"
        "try:\n"
        "    ShmCapturer(sys.argv[1])\n"
        "except ShmUnavailable as exc:\n"
        "    print('unavailable:', exc)\n"
    )
    with Xvfb(320, 240, extra_args=["-extension", "MIT-SHM"]) as server:
        done = subprocess.run([sys.executable, "-c", probe, server.display],
                              capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines() == [
        "MssCapturer (240, 320, 4)",
        "unavailable: the X server has no MIT-SHM extension",
    ]


def test_open_capturer_prefers_shared_memory(_host_xvfb: str) -> None:
    cap = open_capturer(_host_xvfb)
    try:
        assert isinstance(cap, ShmCapturer)
    finally:
        cap.close()


def test_damage_on_the_capturers_connection(_host_xvfb: str) -> None:
    """Sharing the capturer's connection, the damage reset goes out ahead of the grab without a
    round trip of its own: each painting is reported once and in the grab that follows, and
    the capturer outlives the watcher."""
    with ShmCapturer(_host_xvfb, use_xcb=False) as cap:
        watcher = DamageWatcher(_host_xvfb, connection=cap.connection)
        try:
            _settle(watcher)
            for colour in (0x203040, 0x506070, 0x8090A0):
                _paint(_host_xvfb, colour)
                _wait_readable(watcher, 2.0)
                assert watcher.poll() is True
                frame = cap.grab()  # on the same connection, after the reset
                assert int(frame[0, 0, 0]) == colour & 0xFF
                _wait_readable(watcher, 0.2)
                assert watcher.poll() is False  # reported once; the grab made no damage
        finally:
            watcher.close()
        assert cap.grab().shape == (480, 640, 4)  # the shared connection is still open
