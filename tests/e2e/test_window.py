"""Issue 4 end to end: the desktop viewer window (``rdesk connect``) on its own Xvfb.

The host shares one Xvfb; the viewer runs as ``python -m rdesk connect`` with ``DISPLAY`` set
to a second Xvfb (no window manager: the window sits at the geometry it asks for). Screenshots
of the viewer's display are compared with the host's screen; ``xdotool`` types and clicks in
the viewer's display, and a :class:`~tests.xserver.Recorder` on the host's display records
what arrives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from rdesk.client.pixels import mapped_rgb
from rdesk.client.tk import paint
from rdesk.client.tk.viewport import Viewport
from rdesk.host.input.inject import PynputInjector
from tests.e2e.conftest import HostThread, RunningHost
from tests.xserver import (
    Painter,
    Recorder,
    Xvfb,
    assert_images_equal,
    grab_root,
    image_diff,
    run_xdotool,
    wait_until,
)

HOST_W, HOST_H = 640, 480


class Viewer:
    """``rdesk connect`` running on ``display``."""

    def __init__(self, display: str, config: Path, args: list[str]) -> None:
        self.display = display
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rdesk", "--config-dir", str(config), "connect", *args],
            env=dict(os.environ, DISPLAY=display),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.window = 0

    def titles(self) -> dict[int, str]:
        try:
            out = run_xdotool(self.display, "search", "--onlyvisible", "--name", "rdesk")
        except Exception:
            return {}
        found = {}
        for line in out.split():
            with contextlib.suppress(Exception):
                found[int(line)] = run_xdotool(self.display, "getwindowname", line).strip()
        return found

    def wait_title(self, pattern: str, timeout: float = 30) -> int:
        """Wait for a visible window whose title matches ``pattern``; return its id."""
        found: list[int] = []

        def check() -> bool:
            for window, title in self.titles().items():
                if re.search(pattern, title):
                    found.append(window)
                    return True
            return self.proc.poll() is not None

        wait_until(check, timeout, interval=0.2)
        if not found:
            raise AssertionError(
                f"no window titled {pattern!r}: {self.titles()}; exit {self.proc.poll()}; "
                f"{self.stderr()}"
            )
        self.window = found[0]
        return found[0]

    def geometry(self) -> tuple[int, int, int, int]:
        out = run_xdotool(self.display, "getwindowgeometry", str(self.window))
        x, y = (int(v) for v in re.search(r"Position: (\d+),(\d+)", out).groups())  # type: ignore[union-attr]
        w, h = (int(v) for v in re.search(r"Geometry: (\d+)x(\d+)", out).groups())  # type: ignore[union-attr]
        return x, y, w, h

    def shot(self) -> Image.Image:
        x, y, w, h = self.geometry()
        return grab_root(self.display, (x, y, w, h))

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read() if self.proc.stderr else ""

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@dataclasses.dataclass
class Setup:
    host_x: Xvfb
    view_x: Xvfb
    host: RunningHost
    tmp: Path
    viewers: list[Viewer]

    def viewer(self, *extra: str, url: str | None = None,
               auth: list[str] | None = None) -> Viewer:
        args = [url or self.host.url, *(auth if auth is not None else self.host.viewer_args()),
                *extra]
        viewer = Viewer(self.view_x.display, self.tmp / "viewer-config", args)
        self.viewers.append(viewer)
        return viewer


def _setup(xvfb_factory: Callable[..., Xvfb], host_factory: Callable[..., RunningHost],
           injectors: Callable[[str], PynputInjector], tmp_path: Path,
           view_size: tuple[int, int]) -> Iterator[Setup]:
    host_x = xvfb_factory(HOST_W, HOST_H)
    view_x = xvfb_factory(*view_size)
    host = host_factory(host_x.display, injector=injectors)
    setup = Setup(host_x, view_x, host, tmp_path, [])
    try:
        yield setup
    finally:
        for viewer in setup.viewers:
            viewer.close()


@pytest.fixture
def setup(xvfb_factory: Callable[..., Xvfb], host_factory: Callable[..., RunningHost],
          injectors: Callable[[str], PynputInjector], tmp_path: Path) -> Iterator[Setup]:
    """Host 640x480; viewer display 1024x768 (the window fits 1:1)."""
    yield from _setup(xvfb_factory, host_factory, injectors, tmp_path, (1024, 768))


@pytest.fixture
def small_setup(xvfb_factory: Callable[..., Xvfb], host_factory: Callable[..., RunningHost],
                injectors: Callable[[str], PynputInjector], tmp_path: Path) -> Iterator[Setup]:
    """Host 640x480; viewer display 400x300: the window shows it scaled down."""
    yield from _setup(xvfb_factory, host_factory, injectors, tmp_path, (400, 300))


def _wait_image(viewer: Viewer, expected: Callable[[Image.Image], Image.Image],
                tolerance: int, timeout: float = 30) -> None:
    last: list[Image.Image] = []

    def check() -> bool:
        shot = viewer.shot()
        last[:] = [shot]
        want = expected(shot)
        if shot.size != want.size:
            return False
        x = image_diff(shot, want)
        return x[1] <= tolerance

    if not wait_until(check, timeout, interval=0.3):
        assert last, "no screenshot"
        assert_images_equal(last[0], expected(last[0]), tolerance)


# --- display -------------------------------------------------------------------------------------


def test_window_shows_the_host_screen_1to1(setup: Setup) -> None:
    with Painter(setup.host_x.display, seed=7) as painter:
        viewer = setup.viewer("--scale", "1")
        viewer.wait_title(r"^rdesk — 127\.0\.0\.1:\d+ \(control\)$")
        assert viewer.geometry()[2:] == (HOST_W, HOST_H)
        expected = painter.expected()
        _wait_image(viewer, lambda _shot: expected, tolerance=0)
        # A change on the host shows up in the window, pixel-exact.
        painter.rect(100, 50, 200, 120, (255, 0, 128))
        expected = painter.expected()
        _wait_image(viewer, lambda _shot: expected, tolerance=0)


def test_window_scales_to_fit(small_setup: Setup) -> None:
    with Painter(small_setup.host_x.display, seed=3) as painter:
        viewer = small_setup.viewer()
        viewer.wait_title(r"\(control\)")
        _, _, w, h = viewer.geometry()
        assert w < HOST_W and h < HOST_H
        assert abs(w / h - HOST_W / HOST_H) < 0.02  # aspect ratio kept
        expected = painter.expected()

        def scaled(shot: Image.Image) -> Image.Image:
            vp = Viewport(HOST_W, HOST_H, *shot.size)
            dw, dh = vp.display_size
            ox, oy = vp.origin
            canvas = Image.new("RGB", shot.size)
            # The viewer's own scaler (libyuv's bilinear when installed, else Pillow's box)
            # over the framebuffer's kind of memory.
            host, pixels = mapped_rgb(HOST_W, HOST_H)
            host.paste(expected)
            canvas.paste(paint.render(host, vp, (0, 0, dw, dh), pixels), (ox, oy))
            return canvas

        # The same scale of the same pixels: only rounding differs.
        _wait_image(viewer, scaled, tolerance=3)


# --- input ----------------------------------------------------------------------------------------


def _focus(viewer: Viewer) -> None:
    run_xdotool(viewer.display, "windowfocus", "--sync", str(viewer.window))


def _click_at(viewer: Viewer, wx: int, wy: int, button: int = 1) -> None:
    x, y, _, _ = viewer.geometry()
    run_xdotool(viewer.display, "mousemove", "--sync", str(x + wx), str(y + wy))
    run_xdotool(viewer.display, "click", str(button))


def _release_of(button: int, xy: tuple[int, int]) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e["type"] == "button_release" and e["button"] == button and (e["x"], e["y"]) == xy
    )


@pytest.mark.parametrize("fixture", ["setup", "small_setup"], ids=["1to1", "scaled"])
def test_clicks_land_on_the_right_host_pixel(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    s: Setup = request.getfixturevalue(fixture)
    with Recorder(s.host_x.display) as recorder:
        viewer = s.viewer("--scale", "1" if fixture == "setup" else "fit")
        viewer.wait_title(r"\(control\)")
        _, _, w, h = viewer.geometry()
        vp = Viewport(HOST_W, HOST_H, w, h, "1" if fixture == "setup" else "fit")
        points = [(10, 20), (w // 2, h // 3), (w - 1, h - 1), (0, 0)]
        for index, (wx, wy) in enumerate(points):
            button = (1, 3, 2, 1)[index]
            _click_at(viewer, wx, wy, button)
            expected = vp.window_to_host(wx, wy)
            if fixture == "setup":
                assert expected == (wx, wy)
            else:  # about wx / scale
                assert abs(expected[0] - wx * HOST_W / vp.display_size[0]) <= 1
            assert recorder.wait_for(_release_of(button, expected), timeout=20)
        presses = recorder.buttons()
        assert presses == [
            (b, *vp.window_to_host(*p)) for b, p in zip((1, 3, 2, 1), points, strict=True)
        ]


def test_keys_reach_the_host(setup: Setup) -> None:
    with Recorder(setup.host_x.display) as recorder:
        viewer = setup.viewer("--scale", "1")
        viewer.wait_title(r"\(control\)")
        _focus(viewer)
        # Move the pointer into the window so focus stays there.
        _click_at(viewer, 5, 5)
        run_xdotool(viewer.display, "type", "--delay", "30", "Hi there")
        assert recorder.wait_for_text("Hi there", timeout=20).endswith("Hi there")
        run_xdotool(viewer.display, "key", "--delay", "30", "ctrl+a", "F5", "Return", "Escape")
        recorder.wait_for(lambda e: e["type"] == "key_release"
                          and e["keysym_name"] == "Escape", timeout=20)
        names = recorder.keysym_names()
        assert names[-4:] == ["Control_L", "a", "F5", "Return", "Escape"][-4:], names
        ctrl_a = [e for e in recorder.key_presses() if e["keysym_name"] == "a"]
        assert ctrl_a and ctrl_a[-1]["state"] & 4  # Control held
        # Nothing stays held on the host.
        assert wait_until(lambda: not recorder.held_keys(), 10), recorder.held_keys()


def test_view_only_sends_nothing(setup: Setup) -> None:
    with Recorder(setup.host_x.display) as recorder:
        viewer = setup.viewer("--scale", "1", "--view-only")
        viewer.wait_title(r"\(view-only\)")
        _focus(viewer)
        _click_at(viewer, 50, 60)
        run_xdotool(viewer.display, "type", "abc")
        assert recorder.buttons() == [] and recorder.typed_text() == ""
        assert recorder.events(timeout=2) == [] or all(
            e["type"] not in ("key_press", "button_press") for e in recorder.events()
        )


# --- resilience and host keys --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _host_on(display: str, tmp: Path, port: int) -> HostThread:
    thread = HostThread(display, tmp)
    thread.settings = dataclasses.replace(thread.settings, port=port)
    return thread


def test_reconnects_after_host_restart(
    xvfb_factory: Callable[..., Xvfb], tmp_path: Path
) -> None:
    host_x = xvfb_factory(HOST_W, HOST_H)
    view_x = xvfb_factory(1024, 768)
    port = _free_port()
    hosts = [_host_on(host_x.display, tmp_path / "host", port)]
    (tmp_path / "host").mkdir()
    running = hosts[0].start()
    viewer = Viewer(view_x.display, tmp_path / "viewer-config",
                    [running.url, *running.viewer_args(), "--scale", "1"])
    try:
        with Painter(host_x.display, seed=1) as painter:
            viewer.wait_title(r"\(control\)")
            expected = painter.expected()
            _wait_image(viewer, lambda _s: expected, tolerance=0)
            hosts[0].stop()
            viewer.wait_title(r"connection lost")
            painter.image(2)  # changes while the viewer is away
            hosts.append(_host_on(host_x.display, tmp_path / "host", port))
            hosts[1].start()  # same config dir: same key, which the viewer has pinned
            viewer.wait_title(r"\(control\)", timeout=40)
            expected = painter.expected()
            _wait_image(viewer, lambda _s: expected, tolerance=0)
        assert viewer.proc.poll() is None
    finally:
        code = viewer.close()
        hosts[-1].stop()
    assert code == 0, viewer.stderr()


def test_changed_host_key_is_refused(setup: Setup) -> None:
    # The viewer knows another key for this host: a changed key.
    config = setup.tmp / "viewer-config"
    config.mkdir(parents=True, exist_ok=True)
    from rdesk.client.known_hosts import KnownHosts

    KnownHosts(config / "known_hosts").add(
        "127.0.0.1", setup.host.port, "SHA256:" + "A" * 43
    )
    viewer = setup.viewer(auth=["--password-file", str(setup.host.password_file)])
    viewer.wait_title(r"^rdesk — host key CHANGED$")
    assert viewer.proc.poll() is None  # stays in the refused state until Disconnect
    # The dialog's only button, "Disconnect", sits at the bottom centre.
    x, y, w, h = viewer.geometry()
    run_xdotool(viewer.display, "mousemove", "--sync", str(x + w // 2), str(y + h - 26))
    run_xdotool(viewer.display, "click", "1")
    assert viewer.proc.wait(20) == 1
    err = viewer.proc.stderr.read() if viewer.proc.stderr else ""
    assert "SHA256:" + "A" * 43 in err and setup.host.fingerprint in err, err


def test_password_dialog_and_first_contact_dialog(setup: Setup) -> None:
    """No password and no known key: the window asks both, in that order of need."""
    env_password = os.environ.pop("RDESK_PASSWORD", None)
    try:
        viewer = setup.viewer("--scale", "1", auth=[])
        dialog = viewer.wait_title(r"^rdesk — unknown host$")
        run_xdotool(viewer.display, "windowfocus", "--sync", str(dialog))
        run_xdotool(viewer.display, "key", "alt+y")  # "Yes" (the default is No)
        dialog = viewer.wait_title(r"^rdesk — password$")
        run_xdotool(viewer.display, "windowfocus", "--sync", str(dialog))
        password = setup.host.password_file.read_text().strip()
        run_xdotool(viewer.display, "type", "--delay", "20", password)
        run_xdotool(viewer.display, "key", "Return")
        viewer.wait_title(r"\(control\)")
        known = (setup.tmp / "viewer-config" / "known_hosts").read_text()
        assert setup.host.fingerprint in known
    finally:
        if env_password is not None:
            os.environ["RDESK_PASSWORD"] = env_password


def test_first_contact_refused_by_default(setup: Setup) -> None:
    viewer = setup.viewer(auth=["--password-file", str(setup.host.password_file)])
    dialog = viewer.wait_title(r"^rdesk — unknown host$")
    run_xdotool(viewer.display, "windowfocus", "--sync", str(dialog))
    run_xdotool(viewer.display, "key", "Return")  # the default button: No
    # The refusal is then shown in an error box; closing it ends the process with status 1.
    box = viewer.wait_title(r"^rdesk$")
    run_xdotool(viewer.display, "windowfocus", "--sync", str(box))
    run_xdotool(viewer.display, "key", "Return")
    assert viewer.proc.wait(20) == 1
    assert "not trusted" in (viewer.proc.stderr.read() if viewer.proc.stderr else "")
    assert not (setup.tmp / "viewer-config" / "known_hosts").exists() or (
        setup.host.fingerprint not in (setup.tmp / "viewer-config" / "known_hosts").read_text()
    )


def test_f9_toggles_the_overlay(setup: Setup) -> None:
    with Painter(setup.host_x.display, seed=5) as painter:
        viewer = setup.viewer("--scale", "1")
        viewer.wait_title(r"\(control\)")
        expected = painter.expected()
        _wait_image(viewer, lambda _s: expected, tolerance=0)
        _focus(viewer)
        _click_at(viewer, 600, 400)  # pointer inside: the canvas keeps the focus
        run_xdotool(viewer.display, "key", "F9")
        assert wait_until(lambda: image_diff(viewer.shot().crop((0, 0, 120, 60)),
                                             expected.crop((0, 0, 120, 60)))[0] > 100, 10)
        run_xdotool(viewer.display, "key", "F9")
        _wait_image(viewer, lambda _s: expected, tolerance=0)


async def test_ping_measures_the_round_trip(setup: Setup) -> None:
    """The overlay's latency: Connection.ping() and the host's pong set stats.rtt."""
    from rdesk.client.connection import connect
    from tests.e2e.conftest import PASSWORD

    conn = await connect(setup.host.url, PASSWORD, known_hosts=None,
                         pinned=setup.host.fingerprint)
    try:
        assert conn.stats.rtt is None
        await conn.ping()
        await conn.wait_for(lambda: conn.stats.rtt is not None, 10)
        assert conn.stats.rtt is not None and conn.stats.rtt >= 0
    finally:
        await conn.close()
