"""The desktop viewer window (``rdesk connect``): Tk's face on the client library.

Threads: Tk's main loop runs in the main thread; the connection runs on its own asyncio
loop in a background thread (:class:`~rdesk.client.tk.worker.Worker`), which also
reconnects after a drop. The two meet in three places only:

- painted rectangles: the connection's update callback records them in a
  :class:`~rdesk.client.tk.paint.Damage` (under a lock); a Tk timer (:data:`TICK_MS`) takes
  them and paints only those regions of the framebuffer into one ``PhotoImage`` (scaled with
  box resampling when the view is scaled);
- input: the canvas's events (:mod:`rdesk.client.tk.bindings`) go on the worker's queue
  with ``call_soon_threadsafe``; one sender task sends them in order. Pointer motion is
  coalesced to at most one message per tick; keys go through the
  :class:`~rdesk.client.tk.keyboard.Keyboard` (X11 autorepeat);
- questions (password, unknown host key) and state changes: the worker posts them on a
  ``queue.Queue`` the same Tk timer drains; a question carries a ``concurrent.futures``
  future the window answers (:mod:`rdesk.client.tk.dialogs`).

The library never prompts: this window catches :class:`UnknownHostKey` and asks, and shows a
:class:`HostKeyMismatch` with both fingerprints and no way to override it.
"""

from __future__ import annotations

import queue
import signal
import sys
import time
import tkinter
from tkinter import messagebox
from typing import Any

from rdesk.client.connection import Connection
from rdesk.client.known_hosts import HostKeyMismatch
from rdesk.client.tk import dialogs
from rdesk.client.tk.bindings import CanvasInput
from rdesk.client.tk.clipboard import TkClipboard
from rdesk.client.tk.cursor import CursorSprite
from rdesk.client.tk.fit import DesktopFit
from rdesk.client.tk.keyboard import Keyboard, KeyboardGrab
from rdesk.client.tk.menu import build_menu
from rdesk.client.tk.options import ViewerOptions
from rdesk.client.tk.overlay import OverlayRates
from rdesk.client.tk.pointer import Pointer
from rdesk.client.tk.screen import Screen
from rdesk.client.tk.viewport import FIT, ONE_TO_ONE, Viewport
from rdesk.client.tk.worker import Worker
from rdesk.protocol.keysyms import KEYSYMS

__all__ = ["TICK_MS", "ViewerOptions", "ViewerWindow", "run_viewer"]

#: Milliseconds between paint ticks: the window paints (and sends motion) at most this often.
TICK_MS = 8

_CTRL_ALT_DEL = (KEYSYMS["Control_L"], KEYSYMS["Alt_L"], KEYSYMS["Delete"])


class ViewerWindow:
    """The Tk window: paints the framebuffer, sends input, shows dialogs and status."""

    def __init__(self, root: tkinter.Tk, options: ViewerOptions) -> None:
        self.root = root
        self.options = options
        self.exit_code = 0
        self.conn: Connection | None = None
        self.view_only = tkinter.BooleanVar(root, options.view_only)
        self.grab_keys = tkinter.BooleanVar(root, True)  # the F8 menu's "Keyboard grab"
        self.scale_mode = tkinter.StringVar(root, options.scale)
        self.overlay_on = False
        self._x11 = root.tk.call("tk", "windowingsystem") == "x11"
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._rates = OverlayRates(time.monotonic())
        self._closing = False
        self.worker = Worker(options, self._post, self._on_update)
        self.address = self.worker.address
        self.keyboard = Keyboard(
            lambda keysym, down: self.worker.send("key", keysym, int(down)),
            lambda: self.sends_input,
            root,
        )
        self.pointer = Pointer(lambda *event: self.worker.send(*event), lambda: self.sends_input)
        self.clipboard = TkClipboard(
            root, self._post, lambda: self.worker.loop, lambda: self.sends_input
        )

        root.title(f"rdesk — {self.address} (connecting)")
        root.configure(background="black")
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.grid_rowconfigure(0, weight=1)
        root.grid_columnconfigure(0, weight=1)
        self.screen = Screen(root, options.scale)
        self.canvas = self.screen.canvas
        self.sprite = CursorSprite(self.canvas)
        self.sprite.redraw = self.screen.freshen_item
        self.screen.items_above.append(self.sprite.item)
        self.grab = KeyboardGrab(self.canvas, lambda: self.grab_keys.get() and self.sends_input)
        self.fit = DesktopFit(self.canvas, options.resize_desktop, lambda: self.conn,
                              lambda: self.worker.loop, self._set_status)
        self.menu = build_menu(self)
        self.input = CanvasInput(
            self.canvas, self.keyboard, self.pointer, self.grab, self.sprite, self.clipboard,
            viewport=lambda: self.viewport, sends_input=lambda: self.sends_input,
            release_all=self.release_all, x11=self._x11,
            hotkeys={"F8": self.popup_menu, "F9": self.toggle_overlay,
                     "F11": self.toggle_fullscreen},
        )
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
        self.screen.damage.add(painted)

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
            self.sprite.show(self.conn.cursor if self.conn is not None else None)
            self.pointer.flush()  # motion: at most one message per tick
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
            self.keyboard.forget()
            self.pointer.forget()
            self._set_status(f"{args[0]}\n{args[1]}")
            self.root.title(f"rdesk — {self.address} (connection lost)")
        elif kind == "password":
            dialogs.ask_password(self.root, self.address, args[0])
        elif kind == "unknown_key":
            dialogs.ask_unknown_key(self.root, self.address, args[0], args[1])
        elif kind == "changed_key":
            self._refuse_changed_key(args[0])
        elif kind == "fatal":
            self._fatal(args[0])
        elif kind == "clipboard":
            self.clipboard.host_text(args[0], args[1])

    def _on_connected(self, conn: Connection) -> None:
        first = self.conn is None and self.screen.photo is None
        self.conn = conn
        # The host released everything when the old connection ended.
        self.keyboard.forget()
        self.pointer.forget()
        self._set_status("")
        if first and not self.options.fullscreen:
            self._initial_geometry(conn.width, conn.height)
            # Apply the size now, before the title says we are connected: a script (or a
            # test) that waits for the title then finds the window at its size.
            self.root.update_idletasks()
        self._update_title()
        self.screen.damage.everything()
        self.clipboard.attach(conn)
        self.fit.toggled()  # a (re)connected host may take the window's size

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

    @property
    def viewport(self) -> Viewport:
        """Where the host's screen sits in the window (the :class:`Screen`'s)."""
        return self.screen.viewport

    @viewport.setter
    def viewport(self, viewport: Viewport) -> None:
        self.screen.viewport = viewport

    def _paint(self) -> None:
        if self.conn is not None:
            framebuffer = self.conn.framebuffer
            # The memory first: a resize in between makes the sizes differ (not used then).
            pixels = getattr(framebuffer, "pixels", None)
            self.screen.paint(framebuffer.image, pixels)

    # --- status and overlay ----------------------------------------------------------------------

    def _set_status(self, text: str) -> None:
        self.screen.set_status(text)

    def toggle_overlay(self) -> None:
        """Show or hide the statistics overlay (F9)."""
        self.overlay_on = not self.overlay_on
        self.screen.show_overlay(self.overlay_on)
        self._refresh_overlay(reschedule=False)

    def overlay_text(self) -> str:
        """The overlay's lines: paints/s, updates/s, round trip, bandwidth, quality."""
        conn = self.conn
        now = time.monotonic()
        if conn is None:
            return self._rates.idle(now, self.screen.paints)
        stats = conn.stats
        return self._rates.lines(
            now, self.screen.paints, stats.updates, stats.bytes, rtt=stats.rtt,
            exact=conn.framebuffer.exact, size=(conn.width, conn.height),
            scale=self.viewport.scale,
        )

    def _refresh_overlay(self, reschedule: bool = True) -> None:
        if self._closing:
            return
        if self.overlay_on:
            self.screen.set_overlay(self.overlay_text())
        if reschedule:
            self.root.after(500, self._refresh_overlay)

    # --- dialogs ---------------------------------------------------------------------------------

    def _refuse_changed_key(self, exc: HostKeyMismatch) -> None:
        """Show both fingerprints; the only way out is Disconnect (exit status 1)."""
        self.exit_code = 1
        message = f"rdesk: error: {exc}"
        print(message, file=sys.stderr, flush=True)
        self.root.title(f"rdesk — {self.address} (host key CHANGED: refused)")
        self._set_status("host key changed: refused")
        dialogs.show_changed_key(self.root, self.address, exc, self.close)

    def _fatal(self, text: str) -> None:
        self.exit_code = 1
        print(f"rdesk: error: {text}", file=sys.stderr, flush=True)
        self._set_status(text)
        self.root.title(f"rdesk — {self.address} (error)")
        messagebox.showerror("rdesk", text, parent=self.root)
        self.close()

    # --- menu ---------------------------------------------------------------------------------

    def popup_menu(self) -> None:
        self.release_all()
        self.grab.pause()  # the menu and the desktop get the keyboard and pointer back
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

    def on_scale_mode(self) -> None:
        """The menu changed the scale mode."""
        self.screen.set_mode(ONE_TO_ONE if self.scale_mode.get() == ONE_TO_ONE else FIT)

    def on_view_only(self) -> None:
        """The menu turned view-only on or off (on: release everything first)."""
        if self.view_only.get():
            self.release_all()
        self._update_title()

    # --- input --------------------------------------------------------------------------------

    @property
    def sends_input(self) -> bool:
        conn = self.conn
        return conn is not None and conn.role == "control" and not self.view_only.get()

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
        self.keyboard.release_all()
        self.pointer.release_all()


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
