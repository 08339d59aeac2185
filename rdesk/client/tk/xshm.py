"""MIT-SHM puts into a Tk widget's X window, on Tk's own X connection (X11 only).

Tk's photo image costs about 13 ms per 1080p update (``Tk_PhotoPutBlock``: a copy into the
photo, a per-pixel conversion, an ``XPutImage`` through the socket, then the canvas's copies).
:class:`ShmPainter` instead writes B, G, R, pad pixels into a shared-memory segment and asks the
X server to copy them straight into the widget's window (``xcb_shm_put_image``).

It uses the connection Tk itself draws through (``Tk_MainWindow``'s ``Display``, then
``XGetXCBConnection``), so the server sees our puts and Tk's own drawing in the order they were
made: what Tk draws after a put (the canvas's items) lands on top of it. Every request is
*checked*: an X error comes back to us as a value, never to Xlib's error handler (which Tk
would let end the process), and checking the last put is the round trip that tells the segment
may be written again.

:func:`open_painter` answers ``None`` (and the reason) when this cannot work: not X11, a display
that is not local (``:N`` or ``unix:N``; shared memory means nothing on another machine), a
visual that is not 24-bit TrueColor with LSB-first images, a missing library, or a server
without MIT-SHM or refusing the segment.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import tkinter

__all__ = ["BYTES_PER_PIXEL", "ShmPainter", "open_painter"]

#: Bytes of one pixel in the segment: B, G, R and a pad byte (depth 24 in 32 bits).
BYTES_PER_PIXEL = 4

_IPC_PRIVATE, _IPC_CREAT, _IPC_RMID = 0, 0o1000, 0
_XCB_IMAGE_FORMAT_Z_PIXMAP = 2
_XCB_GC_GRAPHICS_EXPOSURES = 1 << 16
#: Offset of ``image_byte_order`` in ``xcb_setup_t`` (fixed by the X protocol's setup reply).
_SETUP_IMAGE_BYTE_ORDER = 30


class _Cookie(ctypes.Structure):
    _fields_ = [("sequence", ctypes.c_uint)]


def _load(name: str, fallback: str) -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library(name) or fallback)


class _Libs:
    """The C functions used, with their argument types."""

    def __init__(self) -> None:
        vp, u8, u16, i16, u32 = (ctypes.c_void_p, ctypes.c_uint8, ctypes.c_uint16,
                                 ctypes.c_int16, ctypes.c_uint32)
        tk = _load("tk8.6", "libtk8.6.so")
        self.main_window = tk.Tk_MainWindow
        self.main_window.argtypes, self.main_window.restype = [vp], vp
        x11xcb = _load("X11-xcb", "libX11-xcb.so.1")
        self.xcb_of = x11xcb.XGetXCBConnection
        self.xcb_of.argtypes, self.xcb_of.restype = [vp], vp
        xcb = _load("xcb", "libxcb.so.1")
        shm = _load("xcb-shm", "libxcb-shm.so.0")
        self.generate_id = xcb.xcb_generate_id
        self.generate_id.argtypes, self.generate_id.restype = [vp], u32
        self.get_setup = xcb.xcb_get_setup
        self.get_setup.argtypes, self.get_setup.restype = [vp], vp
        self.request_check = xcb.xcb_request_check
        self.request_check.argtypes, self.request_check.restype = [vp, _Cookie], vp
        self.create_gc = xcb.xcb_create_gc_checked
        self.create_gc.argtypes = [vp, u32, u32, u32, ctypes.POINTER(u32)]
        self.create_gc.restype = _Cookie
        self.free_gc = xcb.xcb_free_gc_checked
        self.free_gc.argtypes, self.free_gc.restype = [vp, u32], _Cookie
        self.query_version = shm.xcb_shm_query_version
        self.query_version.argtypes, self.query_version.restype = [vp], _Cookie
        self.query_version_reply = shm.xcb_shm_query_version_reply
        self.query_version_reply.argtypes = [vp, _Cookie, ctypes.POINTER(vp)]
        self.query_version_reply.restype = vp
        self.attach = shm.xcb_shm_attach_checked
        self.attach.argtypes, self.attach.restype = [vp, u32, u32, u8], _Cookie
        self.detach = shm.xcb_shm_detach_checked
        self.detach.argtypes, self.detach.restype = [vp, u32], _Cookie
        self.put_image = shm.xcb_shm_put_image_checked
        self.put_image.argtypes = [vp, u32, u32, u16, u16, u16, u16, u16, u16, i16, i16,
                                   u8, u8, u8, u32, u32]
        self.put_image.restype = _Cookie
        libc = ctypes.CDLL(None, use_errno=True)
        self.free = libc.free
        self.free.argtypes, self.free.restype = [vp], None
        self.shmget = libc.shmget
        self.shmget.argtypes, self.shmget.restype = [ctypes.c_int, ctypes.c_size_t,
                                                     ctypes.c_int], ctypes.c_int
        self.shmat = libc.shmat
        self.shmat.argtypes, self.shmat.restype = [ctypes.c_int, vp, ctypes.c_int], vp
        self.shmdt = libc.shmdt
        self.shmdt.argtypes, self.shmdt.restype = [vp], ctypes.c_int
        self.shmctl = libc.shmctl
        self.shmctl.argtypes, self.shmctl.restype = [ctypes.c_int, ctypes.c_int, vp], ctypes.c_int


class ShmPainter:
    """Puts pixels into ``window`` (an X window id) through a segment of :attr:`capacity`
    bytes; made by :func:`open_painter`. Tk thread only.

    :meth:`region` hands out the next free stretch of the segment for a ``w`` x ``h`` box
    (B, G, R, pad; rows of ``w * 4`` bytes), :meth:`put` sends it to the window, :meth:`sync`
    waits until the server has read every put (and reports an X error as ``OSError``).
    """

    def __init__(self, libs: _Libs, conn: int, window: int, capacity: int) -> None:
        self._libs, self._conn, self.window = libs, conn, window
        self._gc = 0
        self._seg = 0
        self._addr = 0
        self.capacity = 0
        self._used = 0
        self._pending: list[_Cookie] = []
        mask = ctypes.c_uint32(0)  # no GraphicsExpose/NoExpose events from our puts
        gc = libs.generate_id(conn)
        self._check(libs.create_gc(conn, gc, window, _XCB_GC_GRAPHICS_EXPOSURES,
                                   ctypes.byref(mask)), "create a GC")
        self._gc = gc
        self.ensure(capacity)

    def _check(self, cookie: _Cookie, what: str) -> None:
        error = self._libs.request_check(self._conn, cookie)
        if error:
            code = ctypes.cast(error, ctypes.POINTER(ctypes.c_uint8))[1]
            self._libs.free(error)
            raise OSError(f"the X server refused to {what} (X error {code})")

    def ensure(self, capacity: int) -> None:
        """Have a segment of at least ``capacity`` bytes (a new one if the old is smaller)."""
        if capacity <= self.capacity:
            return
        self.sync()
        self._release_segment()
        libs = self._libs
        shmid = libs.shmget(_IPC_PRIVATE, capacity, _IPC_CREAT | 0o600)
        if shmid < 0:
            raise OSError(ctypes.get_errno(), f"shmget of {capacity} bytes failed")
        try:
            addr = libs.shmat(shmid, None, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                raise OSError(ctypes.get_errno(), "shmat failed")
            seg = libs.generate_id(self._conn)
            try:
                self._check(libs.attach(self._conn, seg, shmid, 1), "attach the segment")
            except OSError:
                libs.shmdt(addr)
                raise
        finally:
            # Marked for removal now: it goes when both we and the server have detached,
            # even if this process dies.
            libs.shmctl(shmid, _IPC_RMID, None)
        self._seg, self._addr, self.capacity, self._used = seg, addr, capacity, 0

    def region(self, w: int, h: int) -> int:
        """The address of a free ``w * h * 4`` bytes of the segment (after a :meth:`sync`
        when the segment is full): where to write a box before :meth:`put`."""
        size = w * h * BYTES_PER_PIXEL
        if size > self.capacity:
            raise ValueError(f"a {w}x{h} box does not fit the {self.capacity}-byte segment")
        if self._used + size > self.capacity:
            self.sync()
        return self._addr + self._used

    def put(self, w: int, h: int, x: int, y: int) -> None:
        """Send the box last handed out by :meth:`region` to window pixel (x, y)."""
        cookie = self._libs.put_image(
            self._conn, self.window, self._gc, w, h, 0, 0, w, h, x, y, 24,
            _XCB_IMAGE_FORMAT_Z_PIXMAP, 0, self._seg, self._used)
        self._used += w * h * BYTES_PER_PIXEL
        self._pending.append(cookie)

    def sync(self) -> None:
        """Wait until the server has done every put; the segment is then free again."""
        pending, self._pending, self._used = self._pending, [], 0
        errors = []
        for cookie in pending:  # the first check is the round trip, the rest are answered
            try:
                self._check(cookie, "put an image")
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _release_segment(self) -> None:
        if self._seg:
            self._libs.request_check(self._conn, self._libs.detach(self._conn, self._seg))
            self._libs.shmdt(self._addr)
            self._seg, self._addr, self.capacity = 0, 0, 0

    def close(self) -> None:
        """Detach the segment and free the GC (nothing is put afterwards)."""
        with contextlib.suppress(OSError):  # closing: nothing to fall back to
            self.sync()
        self._release_segment()
        if self._gc:
            self._libs.request_check(self._conn, self._libs.free_gc(self._conn, self._gc))
            self._gc = 0


def _local(screen: str) -> bool:
    """Whether the X display named ``screen`` is on this machine (shared memory works)."""
    return screen.startswith(":") or screen.startswith("unix:") or screen.startswith("unix/")


def open_painter(widget: tkinter.Misc, capacity: int) -> tuple[ShmPainter | None, str]:
    """A painter into ``widget``'s window with a segment of ``capacity`` bytes, or ``None``
    and why not (one line)."""
    if widget.tk.call("tk", "windowingsystem") != "x11":
        return None, "not X11"
    screen = str(widget.winfo_screen())
    if not _local(screen):
        return None, f"the display {screen} is not local"
    if widget.winfo_depth() != 24 or widget.winfo_visual() != "truecolor":
        return None, f"a {widget.winfo_depth()}-bit {widget.winfo_visual()} visual"
    if sys.byteorder != "little":
        return None, "not a little-endian machine"
    try:
        libs = _Libs()
    except (OSError, AttributeError) as exc:
        return None, f"a library is missing ({exc})"
    main = libs.main_window(widget.tk.interpaddr())
    if not main:
        return None, "no Tk main window"
    display = ctypes.cast(main, ctypes.POINTER(ctypes.c_void_p))[0]  # Tk_FakeWin.display
    conn = libs.xcb_of(display) if display else None
    if not conn:
        return None, "no XCB connection under Tk's display"
    setup = libs.get_setup(conn)
    if ctypes.cast(setup, ctypes.POINTER(ctypes.c_uint8))[_SETUP_IMAGE_BYTE_ORDER] != 0:
        return None, "the server's images are MSB first"
    error = ctypes.c_void_p()
    reply = libs.query_version_reply(conn, libs.query_version(conn), ctypes.byref(error))
    if error.value:
        libs.free(error)
    if not reply:
        return None, "the X server has no MIT-SHM"
    libs.free(reply)
    widget.update_idletasks()  # the window must exist for the GC
    try:
        return ShmPainter(libs, conn, widget.winfo_id(), capacity), ""
    except OSError as exc:
        return None, str(exc)

