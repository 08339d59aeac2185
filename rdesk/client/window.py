"""The desktop viewer window (``rdesk connect``): Tk's face on the client library.

Threads: Tk's main loop runs in the main thread; the connection runs on its own asyncio
loop in a background thread (:class:`_Worker`), which also reconnects after a drop. The two
meet in three places only:

- painted rectangles: the connection's update callback adds them to a dirty set under a
  lock; a Tk timer (:data:`TICK_MS`) takes the set and paints only those regions of the
  framebuffer into one ``PhotoImage`` (scaled with box resampling when the view is scaled);
- input: the window puts events on the worker's queue with ``call_soon_threadsafe``; one
  sender task sends them in order. Pointer motion is coalesced to at most one message per
  tick;
- questions (password, unknown host key) and state changes: the worker posts them on a
  ``queue.Queue`` the same Tk timer drains; a question carries a ``concurrent.futures``
  future the window answers.

The library never prompts: this window catches :class:`UnknownHostKey` and asks, and shows a
:class:`HostKeyMismatch` with both fingerprints and no way to override it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import queue
import signal
import ssl
import sys
import threading
import time
import tkinter
import tkinter.simpledialog
from collections.abc import Callable
from pathlib import Path
from tkinter import messagebox
from typing import Any

from PIL import Image, ImageTk

from rdesk.client.connection import (
    AuthenticationFailed,
    ConnectError,
    Connection,
    HostAddress,
    connect,
    parse_url,
)
from rdesk.client.known_hosts import HostKeyMismatch, KnownHosts, UnknownHostKey
from rdesk.client.tkkeys import tk_to_keysym
from rdesk.client.viewport import FIT, ONE_TO_ONE, Mode, Viewport
from rdesk.protocol import limits
from rdesk.protocol.keysyms import KEYSYMS

__all__ = [
    "RECONNECT_MAX",
    "RECONNECT_MIN",
    "TICK_MS",
    "ViewerOptions",
    "ViewerWindow",
    "run_viewer",
]

#: Milliseconds between paint ticks: the window paints (and sends motion) at most this often.
TICK_MS = 8
#: Reconnect backoff, seconds: doubles from MIN after each failed attempt, up to MAX.
RECONNECT_MIN = 0.5
RECONNECT_MAX = 8.0
#: Seconds between pings that measure the round-trip time for the overlay.
PING_EVERY = 1.0
#: A released key waits this long (ms) for X11's autorepeat press that follows it.
_REPEAT_WAIT_MS = 30
#: Painting strategy (measured, docs/performance.md): a region this small goes through a
#: PPM ``put``; a larger one is copied from a temporary photo; when the dirty area exceeds
#: this share of the screen, the whole image is pasted at once.
_PUT_MAX_AREA = 16384
_FULL_SHARE = 0.35
_MAX_RECTS = 48

_BUTTON_BITS = {1: 1, 2: 2, 3: 4}
_CTRL_ALT_DEL = (KEYSYMS["Control_L"], KEYSYMS["Alt_L"], KEYSYMS["Delete"])


@dataclasses.dataclass(frozen=True)
class ViewerOptions:
    """What ``rdesk connect`` was asked to do."""

    url: str
    known_hosts: Path
    #: Where the password comes from (file, environment); ``None``: ask with a dialog.
    password: Callable[[], str] | None = None
    fingerprint: str | None = None
    accept_new: bool = False
    view_only: bool = False
    fullscreen: bool = False
    scale: Mode = FIT
    name: str = "rdesk viewer"
    timeout: float = 15.0
    #: TLS context with a client certificate (``--cert/--key``); ``None``: the default one.
    ssl_context: ssl.SSLContext | None = None


class _Cancelled(Exception):
    """The user cancelled a dialog the connection was waiting for."""


# --- the network side ----------------------------------------------------------------------------


class _Worker:
    """The connection, its reconnects and the input sender, on a private asyncio loop."""

    def __init__(self, options: ViewerOptions, post: Callable[..., None],
                 on_update: Callable[[list[tuple[int, int, int, int]]], None]) -> None:
        self.options = options
        self.address: HostAddress = parse_url(options.url)
        self.post = post
        self.on_update = on_update
        self.pinned = options.fingerprint
        self.conn: Connection | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="rdesk-viewer-net", daemon=True)
        self._password: str | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._outbox: asyncio.Queue[tuple[str, tuple[int, ...]]] = asyncio.Queue()
        self._questions: list[concurrent.futures.Future[Any]] = []
        self._closing_task: asyncio.Future[None] | None = None

    # called from the Tk thread

    def start(self) -> None:
        self.thread.start()

    def send(self, kind: str, *args: int) -> None:
        """Queue one input event (``pointer``, ``wheel``, ``key``) for the host, in order."""
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(self._outbox.put_nowait, (kind, args))

    def reconnect(self) -> None:
        """Drop the connection (if any) and connect again at once."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._reconnect)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the connection cleanly and join the thread."""
        for question in self._questions:
            if not question.done():
                question.set_result(None)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._stopping.set)
        self.thread.join(timeout)

    # the loop thread

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._run())
        finally:
            self.loop.close()

    def _reconnect(self) -> None:
        self._wake.set()
        if self.conn is not None:
            self._closing_task = asyncio.ensure_future(self.conn.close())

    async def _run(self) -> None:
        helpers = [asyncio.create_task(self._sender()), asyncio.create_task(self._pinger())]
        try:
            await self._supervise()
        except Exception as exc:  # a bug: say so rather than die silently
            self.post("fatal", f"viewer error: {type(exc).__name__}: {exc}")
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self.conn is not None:
                await self.conn.close()
                self.conn = None

    async def _supervise(self) -> None:
        delay = RECONNECT_MIN
        connected_once = False
        while not self._stopping.is_set():
            self.post("status", f"connecting to {self.address}…")
            try:
                conn = await self._until_stopped(self._connect())
            except UnknownHostKey as exc:
                trusted = await self._ask("unknown_key", exc.fingerprint)
                if not trusted:
                    self.post("fatal", f"{self.address}: host key not trusted; nothing was sent")
                    return
                KnownHosts(self.options.known_hosts).add(
                    self.address.host, self.address.port, exc.fingerprint
                )
                self.pinned = exc.fingerprint
                continue
            except HostKeyMismatch as exc:
                self.post("changed_key", exc)
                return
            except AuthenticationFailed as exc:
                self._password = None
                if self.options.password is not None:
                    self.post("fatal", str(exc))
                    return
                self.post("status", str(exc))
                continue  # the dialog asks again
            except _Cancelled:
                self.post("fatal", "cancelled; nothing was sent")
                return
            except ConnectError as exc:
                if not connected_once:
                    self.post("fatal", str(exc))
                    return
                reason = str(exc)
            else:
                if conn is None:  # stopping
                    return
                connected_once = True
                delay = RECONNECT_MIN
                # The same key, and only it, from now on (a restarted host keeps its key).
                self.pinned = conn.host_fingerprint
                self.conn = conn
                conn.on_update(self.on_update)
                self.post("connected", conn)
                await self._until_stopped(asyncio.shield(conn.closed))
                self.conn = None
                if self._stopping.is_set():
                    await conn.close()
                    return
                lost = conn.closed.result()
                reason = str(lost)
            if self._wake.is_set():
                self._wake.clear()
                continue
            await self._countdown(reason, delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _countdown(self, reason: str, delay: float) -> None:
        end = time.monotonic() + delay
        while not self._stopping.is_set() and not self._wake.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            self.post("lost", f"connection lost — reconnecting in {left:.0f} s", reason)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(left, 1.0))
        self._wake.clear()

    async def _until_stopped(self, awaitable: Any) -> Any:
        """Await ``awaitable`` unless the window closes first (then return ``None``)."""
        task = asyncio.ensure_future(awaitable)
        stopping = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            result = await task
            if isinstance(result, Connection):
                await result.close()
        return None

    async def _connect(self) -> Connection:
        known = KnownHosts(self.options.known_hosts)
        return await connect(
            self.address,
            self._get_password,
            known_hosts=known,
            pinned=self.pinned,
            accept_new=self.options.accept_new,
            name=self.options.name,
            timeout=self.options.timeout,
            ssl_context=self.options.ssl_context,
        )

    def _get_password(self) -> str:
        # Called by connect() once the host key was accepted, on this loop's thread: blocking
        # here while the user types only holds up this connection attempt.
        if self._password is not None:
            return self._password
        if self.options.password is not None:
            self._password = self.options.password()
            return self._password
        future: concurrent.futures.Future[str | None] = concurrent.futures.Future()
        self._questions.append(future)
        self.post("password", future)
        answer = future.result()
        if answer is None:
            raise _Cancelled()
        self._password = answer
        return answer

    async def _ask(self, kind: str, *args: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._questions.append(future)
        self.post(kind, future, *args)
        return await asyncio.wrap_future(future)

    async def _sender(self) -> None:
        while True:
            kind, args = await self._outbox.get()
            conn = self.conn
            if conn is None or conn.closed.done():
                continue  # input while disconnected is dropped, not replayed later
            with contextlib.suppress(ConnectError):
                if kind == "pointer":
                    await conn.pointer(*args)
                elif kind == "wheel":
                    await conn.wheel(*args)
                elif kind == "key":
                    await conn.key(args[0], bool(args[1]))

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY)
            conn = self.conn
            if conn is not None and not conn.closed.done():
                with contextlib.suppress(ConnectError):
                    await conn.ping()


# --- the window -------------------------------------------------------------------------------


class ViewerWindow:
    """The Tk window: paints the framebuffer, sends input, shows dialogs and status."""

    def __init__(self, root: tkinter.Tk, options: ViewerOptions) -> None:
        self.root = root
        self.options = options
        self.exit_code = 0
        self.conn: Connection | None = None
        self.view_only = tkinter.BooleanVar(root, options.view_only)
        self.scale_mode = tkinter.StringVar(root, options.scale)
        self.overlay_on = False
        self._x11 = root.tk.call("tk", "windowingsystem") == "x11"
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._lock = threading.Lock()
        self._dirty: list[tuple[int, int, int, int]] = []
        self._dirty_all = False
        self._pressed: dict[int, int] = {}  # keycode -> keysym sent on press
        self._pending_release: tuple[int, int, int] | None = None  # keycode, time, keysym
        self._release_timer: str | None = None
        self._buttons = 0
        self._motion: tuple[int, int] | None = None
        self._last_pointer: tuple[int, int] = (0, 0)
        self._paints = 0
        self._sample: tuple[float, int, int, int] = (time.monotonic(), 0, 0, 0)
        self._closing = False
        self.worker = _Worker(options, self._post, self._on_update)
        self.address = self.worker.address

        root.title(f"rdesk — {self.address} (connecting)")
        root.configure(background="black")
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.grid_rowconfigure(0, weight=1)
        root.grid_columnconfigure(0, weight=1)
        self.canvas = tkinter.Canvas(
            root, width=640, height=400, background="black", highlightthickness=0, bd=0,
            cursor="crosshair", takefocus=1,
        )
        self.canvas.grid(row=0, column=0, sticky="nsew")
        self.hbar = tkinter.Scrollbar(root, orient="horizontal",
                                      command=lambda *a: self._on_scroll("x", *a))
        self.vbar = tkinter.Scrollbar(root, orient="vertical",
                                      command=lambda *a: self._on_scroll("y", *a))
        self.viewport = Viewport(1, 1, 640, 400, options.scale)
        self.photo: ImageTk.PhotoImage | None = None
        self.image_item = self.canvas.create_image(0, 0, anchor="nw")
        self.status_item = self.canvas.create_text(
            320, 200, text="", fill="#dddddd", font=("TkDefaultFont", 14), justify="center"
        )
        self.overlay_box = self.canvas.create_rectangle(
            6, 6, 6, 6, fill="#000000", outline="#808080", state="hidden"
        )
        self.overlay_item = self.canvas.create_text(
            12, 10, anchor="nw", text="", fill="#80ff80", font=("TkFixedFont", 10),
            state="hidden",
        )
        self.menu = self._build_menu()
        self._bind()
        if options.fullscreen:
            self.toggle_fullscreen()

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.worker.start()
        self.canvas.focus_set()
        self.root.after(TICK_MS, self._tick)
        self.root.after(500, self._refresh_overlay)

    def close(self) -> None:
        """Disconnect cleanly (release keys, close the connection, join the thread), then go."""
        if self._closing:
            return
        self._closing = True
        self.release_all()
        self.worker.stop()
        self.root.destroy()

    def _post(self, kind: str, *args: Any) -> None:
        self._events.put((kind, *args))

    def _on_update(self, painted: list[tuple[int, int, int, int]]) -> None:
        # On the network thread: remember what to paint; the Tk tick paints it.
        with self._lock:
            if not painted:
                self._dirty_all = True
            elif not self._dirty_all:
                self._dirty.extend(painted)
                if len(self._dirty) > _MAX_RECTS:
                    self._dirty = [_bounding_box(self._dirty)]

    def _tick(self) -> None:
        if self._closing:
            return
        try:
            while True:
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    break
                self._handle_event(*event)
                if self._closing:
                    return
            self._paint()
            self._flush_motion()
        finally:
            if not self._closing:
                self.root.after(TICK_MS, self._tick)

    def _handle_event(self, kind: str, *args: Any) -> None:
        if kind == "connected":
            self._on_connected(args[0])
        elif kind == "status":
            self._set_status(args[0])
        elif kind == "lost":
            self.conn = None
            self._pressed.clear()
            self._buttons = 0
            self._set_status(f"{args[0]}\n{args[1]}")
            self.root.title(f"rdesk — {self.address} (connection lost)")
        elif kind == "password":
            self._ask_password(args[0])
        elif kind == "unknown_key":
            self._ask_unknown_key(args[0], args[1])
        elif kind == "changed_key":
            self._refuse_changed_key(args[0])
        elif kind == "fatal":
            self._fatal(args[0])

    def _on_connected(self, conn: Connection) -> None:
        first = self.conn is None and self.photo is None
        self.conn = conn
        self._pressed.clear()  # the host released everything when the old connection ended
        self._buttons = 0
        self._set_status("")
        if first and not self.options.fullscreen:
            self._initial_geometry(conn.width, conn.height)
            # Apply the size now, before the title says we are connected: a script (or a
            # test) that waits for the title then finds the window at its size.
            self.root.update_idletasks()
        self._update_title()
        with self._lock:
            self._dirty_all = True

    def _update_title(self) -> None:
        conn = self.conn
        if conn is None:
            return
        control = conn.role == "control" and not self.view_only.get()
        self.root.title(f"rdesk — {self.address} ({'control' if control else 'view-only'})")

    def _initial_geometry(self, width: int, height: int) -> None:
        screen_w, screen_h = self.root.winfo_screenwidth(), self.root.winfo_screenheight()
        if self.scale_mode.get() == ONE_TO_ONE:
            w, h = min(width, screen_w), min(height, screen_h)
        else:
            fitted = Viewport(width, height, min(width, screen_w * 9 // 10),
                              min(height, screen_h * 9 // 10)).display_size
            w, h = fitted
        self.root.geometry(f"{w}x{h}")

    # --- painting --------------------------------------------------------------------------------

    def _paint(self) -> None:
        conn = self.conn
        if conn is None:
            return
        with self._lock:
            rects, everything = self._dirty, self._dirty_all
            self._dirty, self._dirty_all = [], False
        image = conn.framebuffer.image
        if image.size != (self.viewport.host_w, self.viewport.host_h):
            self.viewport = self.viewport.with_host(*image.size)
            everything = True
        display = self.viewport.display_size
        if self.photo is None or (self.photo.width(), self.photo.height()) != display:
            self._layout()
            display = self.viewport.display_size
            self.photo = ImageTk.PhotoImage("RGB", display)
            self.canvas.itemconfigure(self.image_item, image=self.photo)
            everything = True
        if not rects and not everything:
            return
        if not everything:
            boxes = [self.viewport.host_rect_to_display(*r) for r in rects]
            boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
            area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
            everything = area > _FULL_SHARE * display[0] * display[1]
        if everything:
            self.photo.paste(self._render(image, (0, 0, *display)))
        else:
            for box in boxes:
                self._blit(self._render(image, box), box[0], box[1])
        self._paints += 1

    def _render(self, image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
        """Drawn pixels ``box`` (scaled-image coordinates) of the host image."""
        x0, y0, x1, y1 = box
        if not self.viewport.scaled:
            # The whole screen is pasted as it is: no copy (a torn read while the network
            # thread paints is repaired by the next tick: that rect is dirty again).
            return image if box == (0, 0, *image.size) else image.crop(box)
        return image.resize(
            (x1 - x0, y1 - y0), Image.Resampling.BOX,
            box=self.viewport.display_to_host_box(x0, y0, x1, y1),
        )

    def _blit(self, region: Image.Image, x: int, y: int) -> None:
        assert self.photo is not None
        w, h = region.size
        if w * h <= _PUT_MAX_AREA:
            data = b"P6 %d %d 255 " % (w, h) + region.tobytes()
            self.root.tk.call(str(self.photo), "put", data, "-format", "ppm", "-to", x, y)
        else:
            tile = ImageTk.PhotoImage(region)
            self.root.tk.call(str(self.photo), "copy", str(tile), "-to", x, y)

    def _layout(self) -> None:
        """Place the image, scrollbars and status after a size, mode or screen change."""
        win_w = max(1, self.canvas.winfo_width())
        win_h = max(1, self.canvas.winfo_height())
        self.viewport = self.viewport.resized(win_w, win_h)
        ox, oy = self.viewport.origin
        self.canvas.coords(self.image_item, ox, oy)
        self.canvas.coords(self.status_item, win_w // 2, win_h // 2)
        (fx0, fx1), (fy0, fy1) = self.viewport.scroll_fractions()
        self.hbar.set(fx0, fx1)
        self.vbar.set(fy0, fy1)
        self._place_scrollbars()

    def _place_scrollbars(self) -> None:
        """Show the scrollbars 1:1 when the screen exceeds the window.

        Decided from the whole window's size, not the canvas's (which the bars shrink), so
        showing a bar can never make the decision flip back and forth.
        """
        vp = self.viewport
        need_x = need_y = False
        if vp.mode == ONE_TO_ONE and vp.host_w > 1:
            root_w, root_h = self.root.winfo_width(), self.root.winfo_height()
            bar_w, bar_h = self.vbar.winfo_reqwidth(), self.hbar.winfo_reqheight()
            need_x = vp.host_w > root_w
            need_y = vp.host_h > root_h - (bar_h if need_x else 0)
            need_x = vp.host_w > root_w - (bar_w if need_y else 0)
        if need_x != bool(self.hbar.grid_info()):
            if need_x:
                self.hbar.grid(row=1, column=0, sticky="ew")
            else:
                self.hbar.grid_remove()
        if need_y != bool(self.vbar.grid_info()):
            if need_y:
                self.vbar.grid(row=0, column=1, sticky="ns")
            else:
                self.vbar.grid_remove()

    def _on_configure(self, event: tkinter.Event[Any]) -> None:
        if (event.width, event.height) == (self.viewport.win_w, self.viewport.win_h):
            return
        self._relayout()

    def _relayout(self) -> None:
        before = self.viewport.display_size
        self._layout()
        if self.viewport.display_size != before:
            self.photo = None  # the next tick makes one of the new size and paints it all
        with self._lock:
            self._dirty_all = True

    def _on_scroll(self, axis: str, *args: str) -> None:
        vp = self.viewport
        size = vp.host_w if axis == "x" else vp.host_h
        page = vp.win_w if axis == "x" else vp.win_h
        pos = vp.scroll_x if axis == "x" else vp.scroll_y
        if args[0] == "moveto":
            pos = round(float(args[1]) * size)
        elif args[0] == "scroll":
            pos += int(args[1]) * (page * 9 // 10 if args[2] == "pages" else 32)
        self.viewport = vp.scrolled(pos, vp.scroll_y) if axis == "x" else vp.scrolled(
            vp.scroll_x, pos
        )
        self._layout()

    # --- status and overlay ----------------------------------------------------------------------

    def _set_status(self, text: str) -> None:
        self.canvas.itemconfigure(self.status_item, text=text)
        self.canvas.tag_raise(self.status_item)

    def toggle_overlay(self) -> None:
        self.overlay_on = not self.overlay_on
        state = "normal" if self.overlay_on else "hidden"
        self.canvas.itemconfigure(self.overlay_item, state=state)
        self.canvas.itemconfigure(self.overlay_box, state=state)
        self._refresh_overlay(reschedule=False)

    def overlay_text(self) -> str:
        """The overlay's lines: paints/s, updates/s, round trip, bandwidth, quality."""
        conn = self.conn
        now = time.monotonic()
        then, paints, updates, nbytes = self._sample
        stats = conn.stats if conn is not None else None
        cur_updates = stats.updates if stats else 0
        cur_bytes = stats.bytes if stats else 0
        span = max(now - then, 1e-3)
        self._sample = (now, self._paints, cur_updates, cur_bytes)
        if conn is None:
            return "disconnected"
        fps = (self._paints - paints) / span
        ups = max(0, cur_updates - updates) / span
        rate = max(0, cur_bytes - nbytes) / span
        rtt = f"{stats.rtt * 1000:.1f} ms" if stats and stats.rtt is not None else "—"
        quality = "lossless (exact)" if conn.framebuffer.exact else "lossy (JPEG)"
        return (
            f"{fps:5.1f} fps ({ups:.1f} updates/s)\n"
            f"round trip {rtt}\n"
            f"{_human_rate(rate)}\n"
            f"image {quality}\n"
            f"{conn.width}x{conn.height} at {self.viewport.scale * 100:.0f}%"
        )

    def _refresh_overlay(self, reschedule: bool = True) -> None:
        if self._closing:
            return
        if self.overlay_on:
            self.canvas.itemconfigure(self.overlay_item, text=self.overlay_text())
            x0, y0, x1, y1 = self.canvas.bbox(self.overlay_item) or (6, 6, 6, 6)
            self.canvas.coords(self.overlay_box, x0 - 4, y0 - 3, x1 + 4, y1 + 3)
            self.canvas.tag_raise(self.overlay_box)
            self.canvas.tag_raise(self.overlay_item)
        if reschedule:
            self.root.after(500, self._refresh_overlay)

    # --- dialogs ---------------------------------------------------------------------------------

    def _ask_password(self, future: concurrent.futures.Future[str | None]) -> None:
        answer = tkinter.simpledialog.askstring(
            "rdesk — password", f"Password for {self.address}:", show="*", parent=self.root
        )
        if not future.done():
            future.set_result(answer)

    def _ask_unknown_key(self, future: concurrent.futures.Future[bool], fp: str) -> None:
        trusted = messagebox.askyesno(
            "rdesk — unknown host",
            f"The host {self.address} is not known.\n\n"
            f"Its key fingerprint is\n{fp}\n\n"
            "Compare it with the one `rdesk host` printed.\n"
            "Trust this host and remember its key?",
            default=messagebox.NO, icon=messagebox.WARNING, parent=self.root,
        )
        if not future.done():
            future.set_result(bool(trusted))

    def _refuse_changed_key(self, exc: HostKeyMismatch) -> None:
        """Show both fingerprints; the only way out is Disconnect (exit status 1)."""
        self.exit_code = 1
        message = f"rdesk: error: {exc}"
        print(message, file=sys.stderr, flush=True)
        self.root.title(f"rdesk — {self.address} (host key CHANGED: refused)")
        self._set_status("host key changed: refused")
        dialog = tkinter.Toplevel(self.root)
        dialog.title("rdesk — host key CHANGED")
        expected, offered = exc.expected, exc.actual
        tkinter.Label(
            dialog, justify="left", padx=16, pady=12,
            text=(
                f"The key of {self.address} has CHANGED.\n\n"
                f"expected: {expected}\n"
                f"offered:  {offered}\n\n"
                "Someone may be intercepting the connection, or the host's key was\n"
                "replaced. Nothing was sent. If the change is expected, remove the old\n"
                "key from known_hosts (or pass --fingerprint) and connect again."
            ),
        ).pack()
        button = tkinter.Button(dialog, text="Disconnect", command=self.close, default="active")
        button.pack(pady=(0, 12))
        dialog.protocol("WM_DELETE_WINDOW", self.close)
        for sequence in ("<Return>", "<Escape>", "<KP_Enter>"):
            dialog.bind(sequence, lambda _e: self.close())
        dialog.transient(self.root)
        button.focus_force()

    def _fatal(self, text: str) -> None:
        self.exit_code = 1
        print(f"rdesk: error: {text}", file=sys.stderr, flush=True)
        self._set_status(text)
        self.root.title(f"rdesk — {self.address} (error)")
        messagebox.showerror("rdesk", text, parent=self.root)
        self.close()

    # --- menu ---------------------------------------------------------------------------------

    def _build_menu(self) -> tkinter.Menu:
        menu = tkinter.Menu(self.root, tearoff=0)
        menu.add_command(label="Full screen", accelerator="F11", command=self.toggle_fullscreen)
        menu.add_radiobutton(label="Scale to window", variable=self.scale_mode, value=FIT,
                             command=self._on_scale_mode)
        menu.add_radiobutton(label="Actual size (1:1)", variable=self.scale_mode,
                             value=ONE_TO_ONE, command=self._on_scale_mode)
        menu.add_command(label="Statistics overlay", accelerator="F9",
                         command=self.toggle_overlay)
        menu.add_separator()
        menu.add_command(label="Send Ctrl+Alt+Del", command=self.send_ctrl_alt_del)
        send = tkinter.Menu(menu, tearoff=0)
        for name in ("F8", "F9", "F11", "Escape"):
            send.add_command(label=name, command=self._sender_of(KEYSYMS[name]))
        menu.add_cascade(label="Send key", menu=send)
        menu.add_command(label="Release all keys", command=self.release_all)
        menu.add_checkbutton(label="View only", variable=self.view_only,
                             command=self._on_view_only)
        menu.add_separator()
        menu.add_command(label="Reconnect", command=self.worker.reconnect)
        menu.add_command(label="Disconnect", command=self.close)
        return menu

    def _sender_of(self, keysym: int) -> Callable[[], None]:
        return lambda: self.send_keys(keysym)

    def popup_menu(self) -> None:
        self.release_all()
        x, y = self.root.winfo_pointerx(), self.root.winfo_pointery()
        try:
            self.menu.tk_popup(x, y)
        finally:
            self.menu.grab_release()

    def toggle_fullscreen(self) -> None:
        full = not bool(self.root.attributes("-fullscreen"))
        self.root.attributes("-fullscreen", full)
        if full:
            # Without a window manager -fullscreen does nothing: size the window ourselves.
            w, h = self.root.winfo_screenwidth(), self.root.winfo_screenheight()
            self.root.geometry(f"{w}x{h}+0+0")
        elif self.conn is not None:
            self._initial_geometry(self.conn.width, self.conn.height)

    def _on_scale_mode(self) -> None:
        mode = self.scale_mode.get()
        self.viewport = self.viewport.with_mode(ONE_TO_ONE if mode == ONE_TO_ONE else FIT)
        self.photo = None
        self._relayout()

    def _on_view_only(self) -> None:
        if self.view_only.get():
            self.release_all()
        self._update_title()

    # --- input --------------------------------------------------------------------------------

    @property
    def sends_input(self) -> bool:
        conn = self.conn
        return conn is not None and conn.role == "control" and not self.view_only.get()

    def _bind(self) -> None:
        c = self.canvas
        c.bind("<Configure>", self._on_configure)
        self.root.bind(
            "<Configure>", lambda e: self._place_scrollbars() if e.widget is self.root else None
        )
        c.bind("<KeyPress>", self._on_key_press)
        c.bind("<KeyRelease>", self._on_key_release)
        c.bind("<FocusOut>", lambda _e: self.release_all())
        c.bind("<Motion>", self._on_motion)
        for number in (1, 2, 3):
            c.bind(f"<ButtonPress-{number}>", self._on_button)
            c.bind(f"<ButtonRelease-{number}>", self._on_button)
        for number in (4, 5):  # X11 wheel buttons
            c.bind(f"<ButtonPress-{number}>", self._on_wheel_button)
        # Tk 8.6 cannot name buttons 6 and 7 (horizontal wheel): catch them generically.
        c.bind("<ButtonPress>", self._on_wheel_button)
        c.bind("<MouseWheel>", self._on_mouse_wheel)
        c.bind("<Shift-MouseWheel>", self._on_mouse_wheel)
        c.bind("<Enter>", lambda _e: c.focus_set())

    def send_keys(self, *keysyms: int) -> None:
        """Press ``keysyms`` in order, then release them in reverse."""
        if not self.sends_input:
            return
        for keysym in keysyms:
            self.worker.send("key", keysym, 1)
        for keysym in reversed(keysyms):
            self.worker.send("key", keysym, 0)

    def send_ctrl_alt_del(self) -> None:
        self.send_keys(*_CTRL_ALT_DEL)

    def release_all(self) -> None:
        """Release every key and button this window pressed on the host."""
        self._cancel_pending_release()
        if self.sends_input:
            for keysym in self._pressed.values():
                self.worker.send("key", keysym, 0)
            if self._buttons:
                self.worker.send("pointer", *self._last_pointer, 0)
        self._pressed.clear()
        self._buttons = 0

    def _on_key_press(self, event: tkinter.Event[Any]) -> str:
        keycode, stamp = int(event.keycode), int(event.time)
        pending = self._pending_release
        if pending is not None and pending[0] == keycode and pending[1] == stamp:
            # X11 autorepeat: a release and a press with the same timestamp. Drop the
            # release; send the press again (a repeat, as VNC viewers do).
            self._cancel_pending_release()
            if self.sends_input and keycode in self._pressed:
                self.worker.send("key", self._pressed[keycode], 1)
            return "break"
        self._flush_release()
        if event.keysym == "F8":
            self.popup_menu()
            return "break"
        if event.keysym == "F9":
            self.toggle_overlay()
            return "break"
        if event.keysym == "F11":
            self.toggle_fullscreen()
            return "break"
        keysym = tk_to_keysym(event.keysym, int(event.keysym_num), event.char or "", x11=self._x11)
        if keysym is None or not self.sends_input:
            return "break"
        self._flush_motion()
        self._pressed[keycode] = keysym
        self.worker.send("key", keysym, 1)
        return "break"

    def _on_key_release(self, event: tkinter.Event[Any]) -> str:
        keycode = int(event.keycode)
        keysym = self._pressed.get(keycode)
        if keysym is None:
            return "break"
        self._flush_release()
        self._pending_release = (keycode, int(event.time), keysym)
        self._release_timer = self.root.after(_REPEAT_WAIT_MS, self._flush_release)
        return "break"

    def _cancel_pending_release(self) -> None:
        if self._release_timer is not None:
            self.root.after_cancel(self._release_timer)
            self._release_timer = None
        self._pending_release = None

    def _flush_release(self) -> None:
        pending = self._pending_release
        self._cancel_pending_release()
        if pending is None:
            return
        keycode, _, keysym = pending
        # Released under the keysym it was pressed with (Shift may have gone up first).
        if self._pressed.pop(keycode, None) is not None and self.sends_input:
            self.worker.send("key", keysym, 0)

    def _host_xy(self, event: tkinter.Event[Any]) -> tuple[int, int]:
        return self.viewport.window_to_host(int(event.x), int(event.y))

    def _on_motion(self, event: tkinter.Event[Any]) -> None:
        self._motion = self._host_xy(event)  # sent by the next tick: at most one per frame

    def _flush_motion(self) -> None:
        if self._motion is None:
            return
        xy, self._motion = self._motion, None
        if xy != self._last_pointer and self.sends_input:
            self._last_pointer = xy
            self.worker.send("pointer", *xy, self._buttons)

    def _on_button(self, event: tkinter.Event[Any]) -> None:
        self._flush_release()
        self._motion = None
        xy = self._host_xy(event)
        bit = _BUTTON_BITS[int(event.num)]
        if str(event.type) in ("ButtonPress", "4"):
            self._buttons |= bit
        else:
            self._buttons &= ~bit
        self._last_pointer = xy
        if self.sends_input:
            self.worker.send("pointer", *xy, self._buttons)

    def _on_wheel_button(self, event: tkinter.Event[Any]) -> None:
        steps = {4: (0, -1), 5: (0, 1), 6: (-1, 0), 7: (1, 0)}.get(int(event.num))
        if steps is not None:
            self._wheel(event, *steps)

    def _on_mouse_wheel(self, event: tkinter.Event[Any]) -> None:
        delta = int(event.delta)
        # Windows reports multiples of 120 per detent, macOS small counts.
        steps = delta // 120 if abs(delta) >= 120 else (1 if delta > 0 else -1 if delta else 0)
        steps = max(-limits.MAX_WHEEL_STEPS, min(limits.MAX_WHEEL_STEPS, -steps))
        if int(event.state) & 0x1:  # Shift: horizontal
            self._wheel(event, steps, 0)
        else:
            self._wheel(event, 0, steps)

    def _wheel(self, event: tkinter.Event[Any], dx: int, dy: int) -> None:
        if not (dx or dy) or not self.sends_input:
            return
        self._flush_motion()
        x, y = self._host_xy(event)
        self.worker.send("wheel", x, y, dx, dy)


def _bounding_box(rects: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return x0, y0, x1 - x0, y1 - y0


def _human_rate(bytes_per_s: float) -> str:
    bits = bytes_per_s * 8
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= size:
            return f"{bits / size:.1f} {unit}"
    return f"{bits:.0f} bit/s"


def run_viewer(options: ViewerOptions) -> int:
    """Open the window and run until it is closed; the exit status (1 after a refusal)."""
    try:
        root = tkinter.Tk(className="rdesk")
    except tkinter.TclError as exc:
        print(f"rdesk: error: cannot open a window: {exc}", file=sys.stderr)
        return 1
    window = ViewerWindow(root, options)

    def on_signal(_signum: int, _frame: object) -> None:
        # Tk runs Python handlers between its events (the tick keeps them coming).
        root.after_idle(window.close)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        window.start()
        root.mainloop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not window._closing:
            window._closing = True
            window.worker.stop()
    return window.exit_code
