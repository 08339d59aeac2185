"""The capture loop's X requests through libxcb (ctypes): the MIT-SHM grab and X DAMAGE.

python-xlib builds, sends and parses every request in Python: on the host's event loop a
1080p grab into shared memory cost about 0.2 ms and a DAMAGE drain-and-reset about as much,
every round of a video (docs/performance.md, "Issue 16, ninth session: the host's grab, DAMAGE
and empty rounds"). Here the same requests are single C calls on one xcb connection of their
own. Grab and DAMAGE must share that connection: the X server handles one connection's
requests in order, so a DamageSubtract sent before a grab is processed before it without a
round trip (the contract of :class:`rdesk.host.screen.source.ChangeNotifier`); that is why
there is no xcb grab without xcb DAMAGE.

Needs ``libxcb``, ``libxcb-shm`` and ``libxcb-damage`` (Debian: libxcb1, libxcb-shm0,
libxcb-damage0); without any of them :class:`XcbUnavailable` is raised and the capturer keeps
to python-xlib (:mod:`rdesk.host.screen.xshm`, :mod:`rdesk.host.screen.damage`).
Errors never end the process (xcb reports them; nothing like Xlib's fatal handlers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import select
from typing import Any

__all__ = ["XcbClosed", "XcbDamage", "XcbLink", "XcbRequestError", "XcbUnavailable"]

_ZPIXMAP = 2
_REPORT_NON_EMPTY = 3  # XCB_DAMAGE_REPORT_LEVEL_NON_EMPTY
_DAMAGE_NOTIFY = 0  # XCB_DAMAGE_NOTIFY, relative to the extension's first event


class XcbUnavailable(Exception):
    """The xcb path cannot be used here (a library or an extension is missing)."""


class XcbClosed(Exception):
    """The connection to the X server is gone (or was closed)."""


class XcbRequestError(Exception):
    """The X server refused a request; ``code`` is the X error code."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}: X error {code}")
        self.code = code


class _Cookie(ctypes.Structure):
    _fields_ = [("sequence", ctypes.c_uint)]


class _Extension(ctypes.Structure):  # xcb_extension_t
    _fields_ = [("name", ctypes.c_char_p), ("global_id", ctypes.c_int)]


class _ExtensionReply(ctypes.Structure):  # xcb_query_extension_reply_t
    _fields_ = [("response_type", ctypes.c_uint8), ("pad0", ctypes.c_uint8),
                ("sequence", ctypes.c_uint16), ("length", ctypes.c_uint32),
                ("present", ctypes.c_uint8), ("major_opcode", ctypes.c_uint8),
                ("first_event", ctypes.c_uint8), ("first_error", ctypes.c_uint8)]


class _Error(ctypes.Structure):  # xcb_generic_error_t (its head)
    _fields_ = [("response_type", ctypes.c_uint8), ("error_code", ctypes.c_uint8)]


class _Event(ctypes.Structure):  # xcb_generic_event_t (its head)
    _fields_ = [("response_type", ctypes.c_uint8)]


class _ShmImageReply(ctypes.Structure):  # xcb_shm_get_image_reply_t
    _fields_ = [("response_type", ctypes.c_uint8), ("depth", ctypes.c_uint8),
                ("sequence", ctypes.c_uint16), ("length", ctypes.c_uint32),
                ("visual", ctypes.c_uint32), ("size", ctypes.c_uint32)]


_p = ctypes.c_void_p
_u8, _u16, _i16, _u32 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_int16, ctypes.c_uint32


@functools.cache
def _libraries() -> tuple[Any, Any, Any, Any] | None:
    """(xcb, xcb-shm, xcb-damage, libc) with the prototypes used here, or ``None``."""
    names = ("xcb", "xcb-shm", "xcb-damage")
    try:
        xcb, shm, damage = (ctypes.CDLL(ctypes.util.find_library(n) or f"lib{n}.so.0")
                            for n in names)
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        signatures: list[tuple[Any, str, Any, list[Any]]] = [
            (xcb, "xcb_connect", _p, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]),
            (xcb, "xcb_connection_has_error", ctypes.c_int, [_p]),
            (xcb, "xcb_disconnect", None, [_p]),
            (xcb, "xcb_flush", ctypes.c_int, [_p]),
            (xcb, "xcb_generate_id", _u32, [_p]),
            (xcb, "xcb_get_file_descriptor", ctypes.c_int, [_p]),
            (xcb, "xcb_poll_for_event", _p, [_p]),
            (xcb, "xcb_poll_for_queued_event", _p, [_p]),
            (xcb, "xcb_request_check", _p, [_p, _Cookie]),
            (xcb, "xcb_get_extension_data", ctypes.POINTER(_ExtensionReply),
             [_p, ctypes.POINTER(_Extension)]),
            (shm, "xcb_shm_attach_checked", _Cookie, [_p, _u32, _u32, _u8]),
            (shm, "xcb_shm_detach", _Cookie, [_p, _u32]),
            (shm, "xcb_shm_get_image", _Cookie,
             [_p, _u32, _i16, _i16, _u16, _u16, _u32, _u8, _u32, _u32]),
            (shm, "xcb_shm_get_image_reply", ctypes.POINTER(_ShmImageReply),
             [_p, _Cookie, ctypes.POINTER(_p)]),
            (damage, "xcb_damage_query_version", _Cookie, [_p, _u32, _u32]),
            (damage, "xcb_damage_query_version_reply", _p, [_p, _Cookie, ctypes.POINTER(_p)]),
            (damage, "xcb_damage_create_checked", _Cookie, [_p, _u32, _u32, _u8]),
            (damage, "xcb_damage_subtract", _Cookie, [_p, _u32, _u32, _u32]),
            (damage, "xcb_damage_destroy", _Cookie, [_p, _u32]),
            (libc, "free", None, [_p]),
        ]
        for lib, name, restype, argtypes in signatures:
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        _Extension.in_dll(shm, "xcb_shm_id")
        _Extension.in_dll(damage, "xcb_damage_id")
    except (OSError, AttributeError, ValueError):
        return None
    return xcb, shm, damage, libc


class XcbLink:
    """One xcb connection to ``display`` (None: ``$DISPLAY``) with MIT-SHM and DAMAGE.

    Raises :class:`XcbUnavailable` when a library or either extension is missing, or the
    display cannot be opened. Not thread-safe for the caller's purposes: one thread at a time.
    """

    def __init__(self, display: str | None) -> None:
        libs = _libraries()
        if libs is None:
            raise XcbUnavailable("libxcb, libxcb-shm or libxcb-damage is not installed")
        self._xcb, self._shm, self._damage, self._libc = libs
        self._closed = False
        name = display.encode() if display is not None else None
        self._c = self._xcb.xcb_connect(name, None)
        if not self._c or self._xcb.xcb_connection_has_error(self._c):
            if self._c:
                self._xcb.xcb_disconnect(self._c)
            self._closed = True
            raise XcbUnavailable(f"xcb cannot open display {display or '$DISPLAY'}")
        try:
            self._check_extension(self._shm, "xcb_shm_id", "MIT-SHM")
            damage = self._check_extension(self._damage, "xcb_damage_id", "DAMAGE")
            #: The event type of DamageNotify on this connection.
            self.damage_event = damage.first_event + _DAMAGE_NOTIFY
            # The protocol requires QueryVersion before any other DAMAGE request.
            error = _p()
            reply = self._damage.xcb_damage_query_version_reply(
                self._c, self._damage.xcb_damage_query_version(self._c, 1, 1),
                ctypes.byref(error))
            self._free(reply)
            if not reply:
                self._free(error.value)
                raise XcbUnavailable("DAMAGE does not answer QueryVersion")
        except BaseException:
            self.close()
            raise

    def _check_extension(self, lib: Any, symbol: str, name: str) -> _ExtensionReply:
        reply = self._xcb.xcb_get_extension_data(self._c, ctypes.byref(
            _Extension.in_dll(lib, symbol)))
        if not reply or not reply.contents.present:
            raise XcbUnavailable(f"the X server has no {name} extension")
        return reply.contents

    def _free(self, pointer: Any) -> None:
        if pointer:
            self._libc.free(pointer)

    def _alive(self) -> None:
        if self._closed or self._xcb.xcb_connection_has_error(self._c):
            raise XcbClosed("the X connection is closed")

    def _check(self, what: str, cookie: _Cookie) -> None:
        """Wait for a checked request's outcome; raise if it failed."""
        error = self._xcb.xcb_request_check(self._c, cookie)
        if error:
            code = ctypes.cast(error, ctypes.POINTER(_Error)).contents.error_code
            self._free(error)
            raise XcbRequestError(what, code)
        self._alive()

    # --- MIT-SHM ---------------------------------------------------------------------------

    def shm_attach(self, shmid: int) -> int:
        """Attach System V segment ``shmid`` in the server (read-write); its shmseg id. The
        server has attached it when this returns (a round trip)."""
        self._alive()
        shmseg = self._xcb.xcb_generate_id(self._c)
        self._check("ShmAttach", self._shm.xcb_shm_attach_checked(self._c, shmseg, shmid, 0))
        return int(shmseg)

    def shm_detach(self, shmseg: int) -> None:
        if not self._closed:
            self._shm.xcb_shm_detach(self._c, shmseg)
            self._xcb.xcb_flush(self._c)

    def shm_get_image(self, drawable: int, width: int, height: int, shmseg: int) -> int:
        """ZPixmap of ``drawable``'s (0, 0, width, height) into ``shmseg`` at offset 0; the
        byte count the server wrote. Raises :class:`XcbRequestError` if refused (e.g. the
        screen shrank), :class:`XcbClosed` if the connection is gone."""
        self._alive()
        cookie = self._shm.xcb_shm_get_image(self._c, drawable, 0, 0, width, height,
                                             0xFFFFFFFF, _ZPIXMAP, shmseg, 0)
        error = _p()
        reply = self._shm.xcb_shm_get_image_reply(self._c, cookie, ctypes.byref(error))
        if not reply:
            if error.value:
                code = ctypes.cast(error.value, ctypes.POINTER(_Error)).contents.error_code
                self._free(error.value)
                raise XcbRequestError("ShmGetImage", code)
            raise XcbClosed("the X connection is closed")
        size = int(reply.contents.size)
        self._free(ctypes.cast(reply, _p))
        return size

    # --- DAMAGE and events -----------------------------------------------------------------

    def damage_create(self, drawable: int) -> int:
        """A DAMAGE object on ``drawable`` reporting NonEmpty; its id."""
        self._alive()
        damage = self._xcb.xcb_generate_id(self._c)
        self._check("DamageCreate", self._damage.xcb_damage_create_checked(
            self._c, damage, drawable, _REPORT_NON_EMPTY))
        return int(damage)

    def damage_subtract(self, damage: int) -> None:
        """Empty ``damage``'s region (re-arms NonEmpty reporting); flushed, no round trip."""
        self._damage.xcb_damage_subtract(self._c, damage, 0, 0)
        self._xcb.xcb_flush(self._c)

    def damage_destroy(self, damage: int) -> None:
        if not self._closed:
            self._damage.xcb_damage_destroy(self._c, damage)
            self._xcb.xcb_flush(self._c)

    def next_event(self, queued_only: bool = False) -> int | None:
        """The type (without the sent-event bit; 0 is an error) of the next event, consumed;
        ``None`` when there is none. ``queued_only``: do not read the socket."""
        if self._closed:
            return None
        poll = (self._xcb.xcb_poll_for_queued_event if queued_only
                else self._xcb.xcb_poll_for_event)
        event = poll(self._c)
        if not event:
            return None
        kind = ctypes.cast(event, ctypes.POINTER(_Event)).contents.response_type & 0x7F
        self._free(event)
        return int(kind)

    @property
    def broken(self) -> bool:
        """Whether the connection failed (the server went away) or was closed."""
        return self._closed or bool(self._xcb.xcb_connection_has_error(self._c))

    def fileno(self) -> int:
        return int(self._xcb.xcb_get_file_descriptor(self._c))

    def close(self) -> None:
        """Disconnect (the server frees this connection's segments and damage). Idempotent."""
        if not self._closed:
            self._closed = True
            self._xcb.xcb_disconnect(self._c)


class XcbDamage:
    """X DAMAGE on the root window ``root`` over ``link``: the capture loop's change notifier
    (the contract of :class:`rdesk.host.screen.damage.DamageWatcher`: :meth:`poll` drains and
    re-arms ahead of any grab on ``link`` started after it returns; :meth:`pending` reads
    nothing). ``link`` belongs to the capturer; :meth:`close` destroys only the damage object.
    A broken connection makes :meth:`poll` and :meth:`pending` True, so the grab that follows
    reports the lost display."""

    def __init__(self, link: XcbLink, root: int) -> None:
        self._link = link
        self._damage = link.damage_create(root)
        #: Events read by :meth:`pending` (it must not lose one): their DAMAGE-ness.
        self._seen = False
        self._closed = False

    def fileno(self) -> int:
        return self._link.fileno()

    def pending(self) -> bool:
        """Whether :meth:`poll` may return True: an event queued already (read along with a
        grab's reply) or the socket readable. Takes a queued event into account only."""
        if self._closed:
            raise RuntimeError("XcbDamage is closed")
        if self._seen or self._link.broken:
            return True
        kind = self._link.next_event(queued_only=True)
        if kind is not None:
            self._seen = self._seen or kind == self._link.damage_event
            return True  # a stray event counts once, as with python-xlib
        readable, _, _ = select.select([self._link.fileno()], [], [], 0)
        return bool(readable)

    def poll(self) -> bool:
        """Drain the events; True if anything was drawn since the last poll (the damage is
        then reset, flushed ahead of the caller's next grab on the link)."""
        if self._closed:
            raise RuntimeError("XcbDamage is closed")
        if self._link.broken:
            return True
        damaged, self._seen = self._seen, False
        while (kind := self._link.next_event()) is not None:
            damaged = damaged or kind == self._link.damage_event
        if damaged:
            self._link.damage_subtract(self._damage)
        return damaged

    def close(self) -> None:
        """Destroy the damage object (the link stays open: its owner closes it). Idempotent."""
        if not self._closed:
            self._closed = True
            self._link.damage_destroy(self._damage)

    def __enter__(self) -> XcbDamage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
