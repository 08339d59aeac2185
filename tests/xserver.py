"""Harness for end-to-end tests against a real X server (Xvfb) and real X clients.

Everything here talks to X independently of rdesk, so a test can check rdesk's work against
ground truth:

- :class:`Xvfb` starts a private X server on a free display number and stops it again.
- :func:`grab_root`, :func:`pressed_keys` and :func:`pointer_buttons` read the screen, the
  keyboard and the pointer directly through python-xlib.
- :class:`Painter` drives ``tests/xclients/painter.py``, a client that paints known pixels.
- :class:`Recorder` drives ``tests/xclients/recorder.py``, a client that reports every key and
  pointer event it receives.

Example::

    with Xvfb(640, 480) as xvfb, Painter(xvfb.display) as painter:
        assert_images_equal(grab_root(xvfb.display), painter.expected())
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
from PIL import Image

from rdesk.host.screen.virtual import VirtualDisplay, VirtualDisplayError

XCLIENTS_DIR = Path(__file__).resolve().parent / "xclients"
PAINTER_SCRIPT = XCLIENTS_DIR / "painter.py"
RECORDER_SCRIPT = XCLIENTS_DIR / "recorder.py"

#: Default time to wait for a server or client to become ready, in seconds.
START_TIMEOUT = 15.0
#: Default time to wait for one command to be acknowledged, in seconds.
COMMAND_TIMEOUT = 10.0

Event = dict[str, Any]
RGB = tuple[int, int, int]


class XHarnessError(RuntimeError):
    """A server or test client failed to start, answer or stop as expected."""


class XvfbNotFoundError(XHarnessError):
    """The ``Xvfb`` binary is not installed."""


# --------------------------------------------------------------------------------------------
# Xvfb
# --------------------------------------------------------------------------------------------


class Xvfb:
    """A private Xvfb server, used as a context manager.

    The server picks a free display number itself (``-displayfd``), so tests running in
    parallel never collide. DAMAGE and XTEST are enabled; TCP is not.

    Attributes:
        width, height, depth: the screen geometry asked for.
        display: the display name, e.g. ``":7"`` (set once started).
        env: a copy of ``os.environ`` with ``DISPLAY`` set to :attr:`display`.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        depth: int = 24,
        *,
        start_timeout: float = START_TIMEOUT,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.width = width
        self.height = height
        self.depth = depth
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args)
        self.display = ""
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._server: VirtualDisplay | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"Xvfb({self.width}x{self.height}x{self.depth}, display={self.display!r})"

    @property
    def size(self) -> tuple[int, int]:
        """The screen size as ``(width, height)``."""
        return (self.width, self.height)

    def start(self) -> Xvfb:
        """Start the server and wait until it accepts connections.

        The launch itself is the product's (:class:`rdesk.host.screen.virtual.VirtualDisplay`, what
        ``rdesk host --virtual`` runs); the harness adds a log of the server's output.
        """
        if self.proc is not None:
            raise XHarnessError("Xvfb already started")
        if shutil.which("Xvfb") is None:
            raise XvfbNotFoundError(
                "Xvfb is not installed (apt-get install xvfb); the end-to-end tests need a real "
                "X server"
            )
        self._log = tempfile.TemporaryFile(prefix="xvfb-log-")  # noqa: SIM115 (closed in stop)
        self._server = VirtualDisplay(
            self.width, self.height, self.depth, self.start_timeout,
            extra_args=self.extra_args, output=self._log,
        )  # fmt: skip
        try:
            self._server.start()
        except VirtualDisplayError as exc:
            self.stop()
            raise XHarnessError(f"{exc}\n{self.log()}") from None
        self.proc = self._server.proc
        self.display = self._server.display
        self.env = dict(os.environ, DISPLAY=self.display)
        return self

    def log(self) -> str:
        """Everything the server wrote to stdout/stderr so far."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        self._log.seek(0, os.SEEK_END)
        return text

    def stop(self) -> None:
        """Terminate the server (killed if it does not exit in time); idempotent."""
        server, self._server, self.proc = self._server, None, None
        if server is not None:
            server.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Xvfb:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Direct reads of the X server's state
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def x_connection(display: str) -> Iterator[Any]:
    """Open a python-xlib connection to ``display`` and close it afterwards."""
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display)
    try:
        yield conn
    finally:
        conn.close()


def _channel(data: np.ndarray, mask: int) -> np.ndarray:
    """Extract one colour channel selected by ``mask`` from packed pixels, scaled to 0..255."""
    if mask == 0:
        return np.zeros(data.shape, np.uint8)
    shift = (mask & -mask).bit_length() - 1
    maxval = mask >> shift
    values = (data & np.uint32(mask)) >> np.uint32(shift)
    if maxval == 255:
        return values.astype(np.uint8)
    return ((values.astype(np.uint32) * 255 + maxval // 2) // maxval).astype(np.uint8)


def grab_root(display: str, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """Read the screen (or ``box`` = ``(x, y, w, h)`` of it) as an RGB image, via XGetImage.

    This is independent of rdesk's capture path: it asks the server for a ZPixmap of the root
    window and decodes it using the server's pixmap format, byte order and visual masks.
    """
    from Xlib import X

    with x_connection(display) as conn:
        screen = conn.screen()
        root = screen.root
        if box is None:
            box = (0, 0, screen.width_in_pixels, screen.height_in_pixels)
        x, y, w, h = box
        reply = root.get_image(x, y, w, h, X.ZPixmap, 0xFFFFFFFF)
        depth = reply.depth
        info = conn.display.info
        fmt = next(f for f in info.pixmap_formats if f.depth == depth)
        bpp, pad = fmt.bits_per_pixel, fmt.scanline_pad
        visual = next(
            v
            for d in screen.allowed_depths
            for v in d.visuals
            if v.visual_id == (reply.visual or screen.root_visual)
        )
        masks = (visual.red_mask, visual.green_mask, visual.blue_mask)
        little = info.image_byte_order == X.LSBFirst
    data = reply.data if isinstance(reply.data, bytes) else bytes(reply.data)
    stride = ((w * bpp + pad - 1) // pad) * pad // 8
    rows = np.frombuffer(data, np.uint8)[: stride * h].reshape(h, stride)
    if bpp == 32:
        pixels = rows[:, : w * 4].copy().view("<u4" if little else ">u4").astype(np.uint32)
    elif bpp == 24:
        b = rows[:, : w * 3].reshape(h, w, 3).astype(np.uint32)
        order = (0, 1, 2) if little else (2, 1, 0)
        shifted = b[..., order[0]] | (b[..., order[1]] << 8) | (b[..., order[2]] << 16)
        pixels = shifted.astype(np.uint32)
    elif bpp == 16:
        pixels = rows[:, : w * 2].copy().view("<u2" if little else ">u2").astype(np.uint32)
    else:
        raise XHarnessError(f"unsupported pixmap format: depth {depth}, {bpp} bits per pixel")
    rgb = np.dstack([_channel(pixels, m) for m in masks])
    return Image.fromarray(rgb, "RGB")


def pressed_keys(display: str) -> list[int]:
    """Keycodes the server currently considers held down (XQueryKeymap)."""
    with x_connection(display) as conn:
        keymap = conn.query_keymap()
    return [i * 8 + bit for i, byte in enumerate(keymap) for bit in range(8) if byte & (1 << bit)]


def pointer_buttons(display: str) -> int:
    """The mask of pointer buttons held down (``Button1Mask | ... | Button5Mask``), 0 if none."""
    from Xlib import X

    buttons = X.Button1Mask | X.Button2Mask | X.Button3Mask | X.Button4Mask | X.Button5Mask
    with x_connection(display) as conn:
        return int(conn.screen().root.query_pointer().mask) & buttons


def pointer_position(display: str) -> tuple[int, int]:
    """The pointer's position on the root window."""
    with x_connection(display) as conn:
        reply = conn.screen().root.query_pointer()
        return (int(reply.root_x), int(reply.root_y))


def keysym_to_keycode(display: str, name: str) -> int:
    """The keycode bound to the keysym called ``name`` (e.g. ``"Shift_L"``), 0 if unbound."""
    from Xlib import XK

    with x_connection(display) as conn:
        return int(conn.keysym_to_keycode(XK.string_to_keysym(name)))


def assert_nothing_held(display: str) -> None:
    """Fail if any key or pointer button is still held down on ``display``."""
    keys = pressed_keys(display)
    buttons = pointer_buttons(display)
    assert not keys and not buttons, f"still held: keycodes {keys}, button mask {buttons:#x}"


def image_diff(a: Image.Image, b: Image.Image) -> tuple[int, int]:
    """Compare two images: ``(number of differing pixels, largest channel difference)``."""
    if a.size != b.size:
        raise AssertionError(f"image sizes differ: {a.size} != {b.size}")
    x = np.asarray(a.convert("RGB"), np.int16)
    y = np.asarray(b.convert("RGB"), np.int16)
    delta = np.abs(x - y)
    return int(np.count_nonzero(delta.max(axis=2))), int(delta.max(initial=0))


def assert_images_equal(actual: Image.Image, expected: Image.Image, tolerance: int = 0) -> None:
    """Fail unless every channel of every pixel differs by at most ``tolerance``."""
    x = np.asarray(actual.convert("RGB"), np.int16)
    y = np.asarray(expected.convert("RGB"), np.int16)
    assert x.shape == y.shape, f"image sizes differ: {actual.size} != {expected.size}"
    delta = np.abs(x - y).max(axis=2)
    bad = np.argwhere(delta > tolerance)
    if bad.size:
        yy, xx = (int(v) for v in bad[0])
        raise AssertionError(
            f"{len(bad)} pixels differ by more than {tolerance} (max {int(delta.max())}); "
            f"first at ({xx}, {yy}): {tuple(x[yy, xx])} != {tuple(y[yy, xx])}"
        )


def run_xdotool(display: str, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run ``xdotool ARGS`` on ``display`` and return its stdout; raise if it fails."""
    binary = shutil.which("xdotool")
    if binary is None:
        raise XHarnessError("xdotool is not installed (apt-get install xdotool)")
    proc = subprocess.run(
        [binary, *args],
        env=dict(os.environ, DISPLAY=display),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise XHarnessError(
            f"xdotool {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode().strip()}"
        )
    return proc.stdout.decode()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true (return True) or ``timeout`` passes (return False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Test clients
# --------------------------------------------------------------------------------------------


def _rgb_hex(rgb: RGB | int | str) -> str:
    """Normalise a colour given as ``(r, g, b)``, ``0xRRGGBB`` or ``"RRGGBB"`` to ``RRGGBB``."""
    if isinstance(rgb, str):
        text = rgb.removeprefix("#")
        int(text, 16)
        if len(text) != 6:
            raise ValueError(f"bad colour {rgb!r}")
        return text.lower()
    if isinstance(rgb, int):
        return f"{rgb & 0xFFFFFF:06x}"
    r, g, b = rgb
    return f"{r:02x}{g:02x}{b:02x}"


class _ClientProcess:
    """A test X client run as a subprocess, talking line by line over stdin/stdout."""

    name = "client"

    def __init__(self, display: str, argv: Sequence[str], start_timeout: float) -> None:
        self.display = display
        self.argv = list(argv)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._thread: threading.Thread | None = None

    def _spawn(self) -> subprocess.Popen[str]:
        """Start the process and a thread feeding its stdout lines to :meth:`_on_line`."""
        self._stderr = tempfile.TemporaryFile("w+", prefix=f"{self.name}-err-")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, *self.argv],
            env=dict(os.environ, DISPLAY=self.display, PYTHONUNBUFFERED="1"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._thread = threading.Thread(
            target=self._read_loop, args=(self.proc,), name=f"{self.name}-reader", daemon=True
        )
        self._thread.start()
        return self.proc

    def _read_loop(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line:
                self._on_line(line)
        self._on_eof()

    def _on_line(self, line: str) -> None:
        """Handle one non-empty line of the client's stdout (reader thread)."""

    def _on_eof(self) -> None:
        """Handle the end of the client's stdout (reader thread)."""

    def stderr_text(self) -> str:
        """Whatever the client wrote to stderr so far."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        text = self._stderr.read()
        self._stderr.seek(0, os.SEEK_END)
        return text

    def _send(self, line: str) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise XHarnessError(f"{self.name} is not running\n{self.stderr_text()}")
        proc.stdin.write(line + "\n")
        proc.stdin.flush()

    def close(self, timeout: float = 5.0) -> None:
        """Ask the client to quit, then make sure it has gone."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None and proc.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.write("quit\n")
                    proc.stdin.flush()
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self._after_close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _after_close(self) -> None:
        """Hook for subclasses."""


class Painter(_ClientProcess):
    """Drive ``tests/xclients/painter.py``: a full-screen window showing known pixels.

    Each method returns once the X server holds the new pixels. :meth:`expected` returns what
    the painter says it painted (read from its ``--dump`` PNG), for exact comparison with
    :func:`grab_root` or with what rdesk's viewer shows.
    """

    name = "painter"

    def __init__(
        self,
        display: str,
        seed: int = 0,
        *,
        dump: bool = True,
        start_timeout: float = START_TIMEOUT,
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self.seed = seed
        self.timeout = timeout
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.dump_path: Path | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        argv = [str(PAINTER_SCRIPT), "--seed", str(seed)]
        if dump:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="painter-")
            self.dump_path = Path(self._tmpdir.name) / "painted.png"
            argv += ["--dump", str(self.dump_path)]
        super().__init__(display, argv, start_timeout)

    def start(self) -> Painter:
        """Start the painter and wait until its first image is on screen."""
        self._spawn()
        try:
            self._expect("ready", self.start_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _on_line(self, line: str) -> None:
        self._lines.put(line)

    def _on_eof(self) -> None:
        self._lines.put(None)

    def _expect(self, word: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise XHarnessError(
                    f"painter did not answer {word!r} within {timeout}s\n{self.stderr_text()}"
                ) from None
            if line is None:
                code = self.proc.wait(timeout=5) if self.proc is not None else None
                raise XHarnessError(
                    f"painter exited ({code}) while waiting for {word!r}\n{self.stderr_text()}"
                )
            if line == word:
                return
            if line.startswith("error"):
                raise XHarnessError(f"painter: {line}")

    def command(self, line: str) -> None:
        """Send one raw command line and wait for its ``ok``."""
        self._send(line)
        self._expect("ok", self.timeout)

    def rect(self, x: int, y: int, w: int, h: int, rgb: RGB | int | str) -> None:
        """Fill a rectangle with a solid colour (``(r, g, b)``, ``0xRRGGBB`` or ``"RRGGBB"``)."""
        self.command(f"rect {x} {y} {w} {h} {_rgb_hex(rgb)}")

    def image(self, seed: int) -> None:
        """Repaint the whole screen with the test pattern for ``seed``."""
        self.command(f"image {seed}")
        self.seed = seed

    def expected(self) -> Image.Image:
        """The image the painter says is on screen now (needs ``dump=True``)."""
        if self.dump_path is None:
            raise XHarnessError("Painter was started with dump=False")
        with Image.open(self.dump_path) as img:
            return img.convert("RGB")

    def _after_close(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Painter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Recorder(_ClientProcess):
    """Drive ``tests/xclients/recorder.py``: a focused window reporting every input event.

    A reader thread collects the JSON events as they arrive. Event dictionaries look like::

        {"type": "key_press", "keycode": 38, "keysym": 65, "keysym_name": "A",
         "state": 1, "text": "A", "synthetic": False, "time": 1234, ...}
        {"type": "button_press", "button": 3, "x": 10, "y": 20, "state": 0, ...}
        {"type": "motion", "x": 10, "y": 20, "state": 0, ...}

    Types: ``key_press``, ``key_release``, ``button_press``, ``button_release``, ``motion``,
    ``focus_in``, ``focus_out``, ``mapping`` (and ``ready`` once, kept out of :meth:`events`).
    """

    name = "recorder"

    def __init__(
        self,
        display: str,
        *,
        geometry: str | None = None,
        override_redirect: bool = False,
        flash: bool = False,
        no_motion: bool = False,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        argv = [str(RECORDER_SCRIPT)]
        if geometry:
            argv += ["--geometry", geometry]
        if override_redirect:
            argv.append("--override-redirect")
        if flash:
            argv.append("--flash")
        if no_motion:
            argv.append("--no-motion")
        super().__init__(display, argv, start_timeout)
        self.window: int = 0
        self.geometry: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._ready: Event | None = None
        self._eof = False
        self._last_event_at = 0.0

    def start(self) -> Recorder:
        """Start the recorder and wait until its window is mapped and focused."""
        proc = self._spawn()
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._eof, self.start_timeout)
            ready = self._ready
        if ready is None:
            exited = proc.poll()
            err = self.stderr_text()
            self.close()
            state = f"exited ({exited})" if exited is not None else "timed out"
            raise XHarnessError(f"recorder {state} before it was ready\n{err}")
        self.window = int(ready["window"])
        x, y, w, h = (int(v) for v in ready["geometry"])
        self.geometry = (x, y, w, h)
        return self

    def _on_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            event = {"type": "garbage", "line": line}
        with self._cond:
            if event.get("type") == "ready":
                self._ready = event
            else:
                self._events.append(event)
                self._last_event_at = time.monotonic()
            self._cond.notify_all()

    def _on_eof(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    # -- reading events ------------------------------------------------------------------

    def events(self, timeout: float = 0.0, quiet: float = 0.1) -> list[Event]:
        """A copy of the events received so far.

        With ``timeout > 0``, first wait (at most ``timeout`` seconds) until no new event has
        arrived for ``quiet`` seconds, so a burst that is still being delivered is complete.
        """
        if timeout > 0:
            self.wait_idle(quiet=quiet, timeout=timeout)
        with self._cond:
            return list(self._events)

    def wait_idle(self, quiet: float = 0.1, timeout: float = COMMAND_TIMEOUT) -> bool:
        """Wait until no event has arrived for ``quiet`` seconds; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            with self._cond:
                idle_for = now - self._last_event_at if self._last_event_at else quiet
            if idle_for >= quiet:
                return True
            if now >= deadline:
                return False
            time.sleep(min(quiet - idle_for, deadline - now, 0.05) + 0.001)

    def clear(self) -> None:
        """Forget the events received so far."""
        with self._cond:
            self._events.clear()

    def wait_for(
        self,
        predicate: Callable[[Event], bool],
        timeout: float = COMMAND_TIMEOUT,
        *,
        start: int = 0,
    ) -> Event:
        """Wait for the first event (from index ``start``) matching ``predicate`` and return it.

        Raises :class:`TimeoutError` listing the events seen if none matches in time.
        """
        found: list[Event] = []

        def check() -> bool:
            for event in self._events[start:]:
                if predicate(event):
                    found.append(event)
                    return True
            return self._eof

        with self._cond:
            self._cond.wait_for(check, timeout)
            if found:
                return found[0]
            seen = list(self._events)
        state = "recorder exited" if self._eof else f"not within {timeout}s"
        raise TimeoutError(f"no matching event ({state}); events: {seen}")

    def wait_for_events(
        self, predicate: Callable[[list[Event]], bool], timeout: float = COMMAND_TIMEOUT
    ) -> list[Event]:
        """Wait until ``predicate(all events so far)`` is true; return those events."""
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self._events) or self._eof, timeout)
            seen = list(self._events)
        if ok and predicate(seen):
            return seen
        raise TimeoutError(f"condition not met within {timeout}s; events: {seen}")

    def wait_for_text(self, text: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Wait until :meth:`typed_text` ends with ``text``; return the whole typed text."""
        events = self.wait_for_events(lambda evs: _typed(evs).endswith(text), timeout)
        return _typed(events)

    def key_presses(self) -> list[Event]:
        """The ``key_press`` events so far."""
        return [e for e in self.events() if e["type"] == "key_press"]

    def keysym_names(self, kind: str = "key_press") -> list[str]:
        """``keysym_name`` of each event of type ``kind`` so far."""
        return [e["keysym_name"] for e in self.events() if e["type"] == kind]

    def typed_text(self) -> str:
        """The ``text`` of all ``key_press`` events so far, concatenated (Return is ``\\r``)."""
        return _typed(self.events())

    def buttons(self, kind: str = "button_press") -> list[tuple[int, int, int]]:
        """``(button, x, y)`` of each event of type ``kind`` so far (root coordinates)."""
        return [(e["button"], e["x"], e["y"]) for e in self.events() if e["type"] == kind]

    def motions(self) -> list[tuple[int, int]]:
        """``(x, y)`` of each ``motion`` event so far (root coordinates)."""
        return [(e["x"], e["y"]) for e in self.events() if e["type"] == "motion"]

    def held_keys(self) -> set[int]:
        """Keycodes this window saw pressed and not yet released."""
        held: set[int] = set()
        for e in self.events():
            if e["type"] == "key_press":
                held.add(e["keycode"])
            elif e["type"] == "key_release":
                held.discard(e["keycode"])
        return held

    def focus(self) -> None:
        """Ask the recorder to take the input focus again (e.g. after another window took it)."""
        self._send("focus")

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _typed(events: list[Event]) -> str:
    return "".join(e.get("text", "") for e in events if e["type"] == "key_press")
