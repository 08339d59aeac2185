"""Zero-copy screen grabs: the X server writes each frame into shared memory rdesk owns.

mss grabs through MIT-SHM too, but copies every 8 MB frame out of its one shared buffer into
a new bytearray (about 0.5-0.9 ms of the host's CPU per 1080p frame, more than the whole diff
of a moving screen). :class:`ShmCapturer` instead keeps a small pool of shared-memory
segments and hands out numpy arrays that *are* the segments. A segment is written again only
once nothing references its array any more (CPython reference counts: the pool's own
references are the baseline), so the :class:`~rdesk.host.screen.capture.Capturer` contract — later
grabs never write into a returned frame — holds without a copy.

Needs a local X server with MIT-SHM, 32-bit pixels and System V shared memory; anything else
raises :class:`ShmUnavailable` at construction, and :func:`rdesk.host.screen.backends.open_capturer`
falls back to mss.

The grabs go through libxcb when it is installed with its SHM and DAMAGE libraries
(:mod:`rdesk.host.screen.xcb`: one C call, not python-xlib's request machinery, and X DAMAGE
on the same connection); through python-xlib otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys
import time
import weakref
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from Xlib import X
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.protocol import rq

from rdesk.host.screen.capture import SIZE_CHECK_INTERVAL, CaptureError, RootCapturer
from rdesk.host.screen.xcb import XcbClosed, XcbLink, XcbRequestError, XcbUnavailable

__all__ = ["MAX_POOL_BYTES", "ShmCapturer", "ShmUnavailable"]

log = logging.getLogger(__name__)

#: Most bytes of shared memory the pool may hold (a 1080p frame is 8.3 MB, 4K 33 MB). When
#: every segment is still referenced and another would pass this, a grab is copied instead.
MAX_POOL_BYTES = 128 * 1024 * 1024

_EXTENSION = "MIT-SHM"
_IPC_PRIVATE = 0
_IPC_CREAT = 0o1000
_IPC_RMID = 0


class ShmUnavailable(Exception):
    """Zero-copy capture cannot work on this display; use another capturer."""


# --- the MIT-SHM requests rdesk uses (python-xlib has no binding for this extension) --------


class _QueryVersion(rq.ReplyRequest):
    _request = rq.Struct(rq.Card8("opcode"), rq.Opcode(0), rq.RequestLength())
    _reply = rq.Struct(
        rq.ReplyCode(), rq.Bool("shared_pixmaps"), rq.Card16("sequence_number"),
        rq.ReplyLength(), rq.Card16("major_version"), rq.Card16("minor_version"),
        rq.Card16("uid"), rq.Card16("gid"), rq.Card8("pixmap_format"), rq.Pad(15),
    )


class _Attach(rq.Request):
    _request = rq.Struct(
        rq.Card8("opcode"), rq.Opcode(1), rq.RequestLength(),
        rq.Card32("shmseg"), rq.Card32("shmid"), rq.Bool("read_only"), rq.Pad(3),
    )


class _Detach(rq.Request):
    _request = rq.Struct(rq.Card8("opcode"), rq.Opcode(2), rq.RequestLength(),
                         rq.Card32("shmseg"))


class _GetImage(rq.ReplyRequest):
    _request = rq.Struct(
        rq.Card8("opcode"), rq.Opcode(4), rq.RequestLength(),
        rq.Drawable("drawable"), rq.Int16("x"), rq.Int16("y"),
        rq.Card16("width"), rq.Card16("height"), rq.Card32("plane_mask"),
        rq.Card8("format"), rq.Pad(3), rq.Card32("shmseg"), rq.Card32("offset"),
    )
    _reply = rq.Struct(
        rq.ReplyCode(), rq.Card8("depth"), rq.Card16("sequence_number"), rq.ReplyLength(),
        rq.Card32("visual"), rq.Card32("size"), rq.Pad(16),
    )


class _Packed:
    """A request's bytes, packed once: stands in for a request class's ``_request`` struct.

    python-xlib packs every request field by field in Python (about a third of a grab's CPU);
    a grab into a given segment sends the same bytes every time, so each segment keeps them.
    """

    def __init__(self, binary: bytes) -> None:
        self.binary = binary

    def to_binary(self, *args: object, **keys: object) -> bytes:
        return self.binary


def _get_image_request(binary: bytes) -> type[_GetImage]:
    """A :class:`_GetImage` that sends ``binary`` (as packed by ``_GetImage._request``)."""
    return type("_PackedGetImage", (_GetImage,), {"_request": _Packed(binary)})


# --- System V shared memory through libc --------------------------------------------------


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
    libc.shmget.restype = ctypes.c_int
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmat.restype = ctypes.c_void_p
    libc.shmdt.argtypes = [ctypes.c_void_p]
    libc.shmdt.restype = ctypes.c_int
    libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    libc.shmctl.restype = ctypes.c_int
    return libc


_FAILED = ctypes.c_void_p(-1).value


@dataclass
class _Segment:
    """One shared-memory frame: attached here and in the X server."""

    shmseg: int  # the X server's id for it
    root: npt.NDArray[np.uint8]  # flat array over the memory; every view's .base
    frame: npt.NDArray[np.uint8]  # (h, w, 4) view handed out by grab()
    get_image: type[_GetImage] | None  # python-xlib's whole-screen grab into it, packed once
    root_refs: int = 0
    frame_refs: int = 0


def _refs(seg: _Segment) -> tuple[int, int]:
    # One function for the baseline and every later check, so the temporaries match.
    return sys.getrefcount(seg.root), sys.getrefcount(seg.frame)


class ShmCapturer(RootCapturer):
    """Capture the whole X screen (the root window) into shared memory, without copying.

    ``display`` is an X display name such as ``":99"``; None means ``$DISPLAY``. Raises
    :class:`CaptureError` when the display cannot be opened and :class:`ShmUnavailable` when
    zero-copy capture cannot work there. A resize is followed as by
    :class:`~rdesk.host.screen.capture.MssCapturer` (size checked every :data:`SIZE_CHECK_INTERVAL`
    seconds, and at once when a grab fails). Not thread-safe: one thread at a time; the
    returned frames may be read from any thread.

    ``use_xcb``: grab through libxcb when it can (:attr:`xcb`); ``False`` keeps to python-xlib.
    """

    def __init__(self, display: str | None = None, *, use_xcb: bool = True) -> None:
        self._open(display)
        self._closed = False
        self._pool: list[_Segment] = []
        self._spare: _Segment | None = None  # grabbed into, then copied, when the pool is full
        self._xcb: XcbLink | None = None
        try:
            self._setup(use_xcb)
        except BaseException:
            if self._xcb is not None:
                self._xcb.close()
            self._x.close()
            raise

    def _setup(self, use_xcb: bool) -> None:
        ext = self._x.query_extension(_EXTENSION)
        if ext is None:
            raise ShmUnavailable("the X server has no MIT-SHM extension")
        self._opcode = ext.major_opcode
        if sys.byteorder != "little":
            raise ShmUnavailable("frames are taken as little-endian BGRX")
        screen = self._x.screen()
        depth = screen.root_depth
        bpp = [f.bits_per_pixel for f in self._x.display.info.pixmap_formats if f.depth == depth]
        if depth not in (24, 32) or bpp != [32]:
            raise ShmUnavailable(f"root depth {depth} is not stored as 32-bit pixels")
        try:
            _QueryVersion(display=self._x.display, opcode=self._opcode)
        except (xerror.XError, xerror.ConnectionClosedError) as exc:
            raise ShmUnavailable(f"MIT-SHM does not answer: {exc}") from exc
        try:
            self._libc = _libc()
        except (OSError, AttributeError) as exc:
            raise ShmUnavailable(f"no System V shared memory: {exc}") from exc
        self._width, self._height = self._root_size()
        self._size_checked = time.monotonic()
        if use_xcb:
            try:
                self._xcb = XcbLink(self._display_name)
            except XcbUnavailable as exc:
                log.info("grabbing through python-xlib (%s)", exc)
        # Prove the whole path once now, so a failure is a fallback rather than an error later.
        self._get_image(self._take())

    # --- shared memory ------------------------------------------------------------------

    def _new_segment(self) -> _Segment:
        nbytes = self._width * self._height * 4
        libc = self._libc
        shmid = libc.shmget(_IPC_PRIVATE, nbytes, _IPC_CREAT | 0o600)
        if shmid < 0:
            raise ShmUnavailable(f"shmget failed: errno {ctypes.get_errno()}")
        try:
            addr = libc.shmat(shmid, None, 0)
            if addr in (None, _FAILED):
                raise ShmUnavailable(f"shmat failed: errno {ctypes.get_errno()}")
            shmseg = self._attach(shmid, addr)
        finally:
            # Marked for removal now: freed by the kernel once both sides detach, even if this
            # process dies, and no other process can attach it from here on.
            libc.shmctl(shmid, _IPC_RMID, None)
        memory = memoryview((ctypes.c_uint8 * nbytes).from_address(addr)).cast("B")
        root = np.frombuffer(memory, dtype=np.uint8)
        del memory
        # Unmapped when the memory is no longer referenced at all (the pool let go of it and
        # no frame or view of it is alive), never while a caller could still read it.
        weakref.finalize(root, libc.shmdt, addr)
        get_image = None
        if self._xcb is None:
            get_image = _get_image_request(_GetImage._request.to_binary(
                opcode=self._opcode, drawable=self._root, x=0, y=0, width=self._width,
                height=self._height, plane_mask=0xFFFFFFFF, format=X.ZPixmap, shmseg=shmseg,
                offset=0,
            ))
        seg = _Segment(shmseg, root, root.reshape(self._height, self._width, 4), get_image)
        del root  # the baseline counts only the segment's own references
        seg.root_refs, seg.frame_refs = _refs(seg)
        return seg

    def _attach(self, shmid: int, addr: int) -> int:
        """The server attaches segment ``shmid`` (mapped here at ``addr``); its shmseg. The
        server has attached (or refused) when this returns, before the id is removed."""
        if self._xcb is not None:
            try:
                return self._xcb.shm_attach(shmid)
            except (XcbRequestError, XcbClosed) as exc:
                self._libc.shmdt(addr)
                raise ShmUnavailable(f"the X server cannot attach our memory: {exc}") from exc
        shmseg = self._x.display.allocate_resource_id()
        catch = xerror.CatchError()
        _Attach(display=self._x.display, onerror=catch, opcode=self._opcode,
                shmseg=shmseg, shmid=shmid, read_only=False)
        self._x.sync()
        if catch.get_error() is not None:
            self._libc.shmdt(addr)
            raise ShmUnavailable(f"the X server cannot attach our memory: {catch.get_error()}")
        return int(shmseg)

    @staticmethod
    def _free(seg: _Segment) -> bool:
        """Whether nothing but the segment itself references its memory."""
        return _refs(seg) == (seg.root_refs, seg.frame_refs)

    def _take(self) -> _Segment:
        """A segment no caller references: a pooled one, a new one, or else the spare."""
        for seg in self._pool:
            if self._free(seg):
                return seg
        nbytes = self._width * self._height * 4
        if (len(self._pool) + 1) * nbytes <= MAX_POOL_BYTES:
            self._pool.append(self._new_segment())
            return self._pool[-1]
        if self._spare is None:
            self._spare = self._new_segment()
        return self._spare

    def _retire_all(self) -> None:
        """Stop using every segment (the screen changed size, or closing): the server detaches
        them now; each is unmapped here once the last frame in it is gone (its finalizer)."""
        for seg in [*self._pool, *([self._spare] if self._spare else [])]:
            if self._xcb is not None:
                self._xcb.shm_detach(seg.shmseg)
                continue
            with contextlib.suppress(xerror.XError, xerror.ConnectionClosedError, OSError):
                _Detach(display=self._x.display, opcode=self._opcode, shmseg=seg.shmseg)
        self._pool, self._spare = [], None

    # --- the Capturer interface -------------------------------------------------------

    def _resize_if_needed(self) -> None:
        self._size_checked = time.monotonic()
        size = self._root_size()
        if size != (self._width, self._height):
            self._retire_all()
            self._width, self._height = size

    @property
    def connection(self) -> xdisplay.Display | None:
        """The python-xlib display grabs are taken on, if they are (``None`` when they go
        through :attr:`xcb`). X DAMAGE may share it
        (:class:`rdesk.host.screen.damage.DamageWatcher`): one connection's requests are handled in
        order, so a damage reset sent before a grab needs no round trip of its own."""
        return self._x if self._xcb is None else None

    @property
    def xcb(self) -> XcbLink | None:
        """The xcb connection grabs are taken on, if they are; X DAMAGE must then use it
        (:func:`rdesk.host.screen.damage.watch_changes`)."""
        return self._xcb

    @property
    def root_id(self) -> int:
        """The X id of the root window grabbed."""
        return int(self._root.id)

    def _get_image(self, seg: _Segment) -> None:
        if self._xcb is not None:
            size = self._xcb.shm_get_image(self._root.id, self._width, self._height, seg.shmseg)
        else:
            assert seg.get_image is not None
            size = seg.get_image(display=self._x.display).size
        if size != seg.root.size:
            raise CaptureError(f"capture returned {size} bytes, not {seg.root.size}")

    def grab(self) -> npt.NDArray[np.uint8]:
        """Capture the whole screen; see :meth:`Capturer.grab` for the contract.

        The frame is shared memory that no later grab writes while anything references it.
        """
        if self._closed:
            raise CaptureError("capturer is closed")
        if time.monotonic() - self._size_checked >= SIZE_CHECK_INTERVAL:
            self._resize_if_needed()
        try:
            try:
                seg = self._take()
                self._get_image(seg)
            except (xerror.XError, XcbRequestError):
                # Most likely the screen shrank since its size was checked: check, retry once.
                self._resize_if_needed()
                seg = self._take()
                self._get_image(seg)
        except (xerror.XError, XcbRequestError) as exc:
            raise CaptureError(f"capture failed on display {self._display_name}") from exc
        except (xerror.ConnectionClosedError, XcbClosed, OSError) as exc:
            raise CaptureError(f"lost connection to display {self._display_name}") from exc
        except ShmUnavailable as exc:
            raise CaptureError(f"capture failed on display {self._display_name}: {exc}") from exc
        return seg.frame.copy() if seg is self._spare else seg.frame

    def close(self) -> None:
        """Detach every segment and close the display connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(xerror.XError, xerror.ConnectionClosedError, OSError):
            self._retire_all()
            if self._xcb is not None:
                self._xcb.close()
            self._x.close()
