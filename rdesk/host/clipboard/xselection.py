"""The host's side of X selections: own them with a viewer's text, watch them for the host's.

:class:`XSelections` runs one python-xlib connection in a daemon thread. It

* **watches** CLIPBOARD (and PRIMARY when asked) with XFIXES selection-owner notify: when
  another client takes a selection, it converts it to ``UTF8_STRING`` and reports the text
  through ``on_text(selection, text)``, or ``on_refused(selection, reason)`` when the text is
  over ``cap`` bytes (read from the property's length first, never fetched), not UTF-8, or has
  a NUL. Large selections arrive by the ICCCM ``INCR`` protocol; it is followed under the same
  cap, chunk by chunk.
* **owns** a selection on :meth:`set_text`: it becomes the owner and answers every
  ``SelectionRequest`` for ``TARGETS``, ``UTF8_STRING``, ``TEXT`` and ``STRING`` (answered as
  UTF-8 too, as xclip does), sending text larger than one request by ``INCR``.

Callbacks run in the X thread: the caller hands them on to its event loop.
"""

from __future__ import annotations

import os
import queue
import select
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rdesk.common.xthread import ConnectionThread
from rdesk.protocol.clipboard import refusal

__all__ = ["INCR_CHUNK", "XSelections", "XSelectionsUnavailable"]

#: Bytes per property write, and the size above which text is served by INCR: well under the
#: 256 KiB request limit of a server without BIG-REQUESTS (python-xlib does not use them).
INCR_CHUNK = 64 * 1024
_SELECTIONS = {"clipboard": "CLIPBOARD", "primary": "PRIMARY"}


class XSelectionsUnavailable(Exception):
    """No X connection or no XFIXES; ``str()`` is one line."""


@dataclass
class _Incoming:
    """An INCR transfer we are reading."""

    selection: str
    buffer: bytearray = field(default_factory=bytearray)


@dataclass
class _Outgoing:
    """An INCR transfer we are serving to one requestor's property."""

    window: Any
    prop: int
    data: bytes
    offset: int = 0


class XSelections(ConnectionThread):
    """Watch and own X selections on ``display`` (see the module docstring).

    ``selections`` names which (``"clipboard"``, ``"primary"``). :meth:`close` stops the thread
    and closes the connection.
    """

    def __init__(
        self,
        display: str,
        selections: tuple[str, ...],
        cap: int,
        on_text: Callable[[str, str], None],
        on_refused: Callable[[str, str], None],
    ) -> None:
        from Xlib import X, Xatom
        from Xlib import display as xdisplay
        from Xlib.error import DisplayError
        from Xlib.ext import xfixes

        try:
            self._conn = xdisplay.Display(display)
        except (DisplayError, OSError) as exc:
            raise XSelectionsUnavailable(
                f"clipboard: cannot open display {display}: {exc}"
            ) from None
        if not self._conn.has_extension("XFIXES"):
            self._conn.close()
            raise XSelectionsUnavailable("clipboard: the X server has no XFIXES")
        self._conn.xfixes_query_version()
        # python-xlib makes a class per display for extension events: match the code instead.
        self._owner_notify = (
            self._conn.query_extension("XFIXES").first_event + xfixes.XFixesSelectionNotify
        )
        self._X, self._xfixes = X, xfixes
        self.cap = cap
        self._on_text, self._on_refused = on_text, on_refused
        atom = self._conn.intern_atom
        self._atoms = {
            name: atom(xname) for name, xname in _SELECTIONS.items() if name in selections
        }
        self._names = {value: name for name, value in self._atoms.items()}
        self._utf8, self._incr, self._targets = atom("UTF8_STRING"), atom("INCR"), atom("TARGETS")
        self._text_atom, self._string = atom("TEXT"), Xatom.STRING
        self._prop = atom("RDESK_SELECTION")
        root = self._conn.screen().root
        self._window = root.create_window(
            0, 0, 1, 1, 0, X.CopyFromParent, X.InputOnly, X.CopyFromParent,
            event_mask=X.PropertyChangeMask,
        )  # fmt: skip
        for value in self._atoms.values():
            self._conn.xfixes_select_selection_input(
                self._window, value, xfixes.XFixesSetSelectionOwnerNotifyMask
            )
        self._owned: dict[int, bytes] = {}
        self._incoming: _Incoming | None = None
        self._outgoing: dict[tuple[int, int], _Outgoing] = {}
        self._commands: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._conn.flush()
        self._start_thread("x-selections")

    # --- from any thread ---------------------------------------------------------------------

    def set_text(self, selection: str, text: str) -> None:
        """Own ``selection`` with ``text`` (the caller has checked it against the cap)."""
        self._commands.put((selection, text))
        self.wake()

    # --- the X thread ------------------------------------------------------------------------

    def _run(self) -> None:
        fd = self._conn.fileno()
        while not self._stopping:
            try:
                # pending_events() reads what the socket holds without blocking.
                while self._conn.pending_events():
                    self._event(self._conn.next_event())
                self._conn.flush()
            except Exception:  # the server went away: the host is stopping
                return
            ready, _, _ = select.select([fd, self.wake_r], [], [], 1.0)
            if self.wake_r in ready:
                os.read(self.wake_r, 4096)
                self._run_commands()

    def _run_commands(self) -> None:
        while True:
            try:
                selection, text = self._commands.get_nowait()
            except queue.Empty:
                return  # _run's loop flushes the requests before it waits again
            value = self._atoms.get(selection)
            if value is None:
                continue
            self._owned[value] = text.encode("utf-8")
            self._window.set_selection_owner(value, self._X.CurrentTime)

    def _event(self, event: Any) -> None:
        X = self._X
        kind = event.type & 0x7F  # the high bit marks an event sent by another client
        owner_notify = self._xfixes.XFixesSetSelectionOwnerNotify
        if kind == self._owner_notify and event.sub_code == owner_notify:
            owner = getattr(event.owner, "id", event.owner)
            if owner not in (self._window.id, X.NONE):
                self._window.convert_selection(
                    event.selection, self._utf8, self._prop, X.CurrentTime
                )
        elif kind == X.SelectionNotify:
            self._converted(event)
        elif kind == X.SelectionRequest:
            self._request(event)
        elif kind == X.SelectionClear:
            self._owned.pop(event.atom, None)
        elif kind == X.PropertyNotify:
            self._property(event)
        self._conn.flush()

    # reading the host's text

    def _converted(self, event: Any) -> None:
        name = self._names.get(event.selection)
        if name is None or event.property == self._X.NONE:
            return  # not ours, or the owner could not give text
        head = self._window.get_property(self._prop, self._X.AnyPropertyType, 0, 0)
        if head is None:
            return
        if head.property_type == self._incr:
            # The owner will write chunks each time we delete the property (ICCCM 2.7.2).
            self._incoming = _Incoming(name)
            self._window.delete_property(self._prop)
            return
        size = head.bytes_after
        if size > self.cap:
            self._window.delete_property(self._prop)
            self._on_refused(
                name, f"clipboard text of {size} bytes exceeds the {self.cap}-byte limit"
            )
            return
        whole = self._window.get_property(
            self._prop, self._X.AnyPropertyType, 0, (size + 3) // 4, True
        )
        self._deliver(name, bytes(whole.value) if whole is not None else b"")

    def _property(self, event: Any) -> None:
        X = self._X
        if event.window.id == self._window.id and event.atom == self._prop:
            incoming = self._incoming
            if incoming is None or event.state != X.PropertyNewValue:
                return
            chunk = self._window.get_property(self._prop, X.AnyPropertyType, 0, 1 << 24, True)
            data = bytes(chunk.value) if chunk is not None else b""
            if not data:
                self._incoming = None
                self._deliver(incoming.selection, bytes(incoming.buffer))
            elif len(incoming.buffer) + len(data) > self.cap:
                self._incoming = None  # stop reading; the owner gives up on its own
                self._on_refused(
                    incoming.selection, f"clipboard text exceeds the {self.cap}-byte limit"
                )
            else:
                incoming.buffer += data
            return
        key = (event.window.id, event.atom)
        outgoing = self._outgoing.get(key)
        if outgoing is not None and event.state == X.PropertyDelete:
            self._serve_chunk(key, outgoing)

    def _deliver(self, name: str, data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self._on_refused(name, "clipboard text is not valid UTF-8")
            return
        reason = refusal(text, self.cap)
        if reason is not None:
            self._on_refused(name, reason)
        else:
            self._on_text(name, text)

    # serving our text

    def _request(self, event: Any) -> None:
        X = self._X
        from Xlib.protocol import event as xevent

        data = self._owned.get(event.selection)
        prop = event.property if event.property != X.NONE else event.target
        requestor = event.requestor
        answered = X.NONE
        if data is not None:
            if event.target == self._targets:
                requestor.change_property(
                    prop, self._xatom_atom(), 32,
                    [self._targets, self._utf8, self._text_atom, self._string],
                )  # fmt: skip
                answered = prop
            elif event.target in (self._utf8, self._text_atom, self._string):
                if len(data) > INCR_CHUNK:
                    requestor.change_attributes(event_mask=X.PropertyChangeMask)
                    requestor.change_property(prop, self._incr, 32, [len(data)])
                    self._outgoing[(requestor.id, prop)] = _Outgoing(requestor, prop, data)
                else:
                    requestor.change_property(prop, self._utf8, 8, data)
                answered = prop
        notify = xevent.SelectionNotify(
            time=event.time, requestor=requestor, selection=event.selection,
            target=event.target, property=answered,
        )  # fmt: skip
        requestor.send_event(notify)

    def _serve_chunk(self, key: tuple[int, int], out: _Outgoing) -> None:
        piece = out.data[out.offset : out.offset + INCR_CHUNK]
        out.offset += len(piece)
        out.window.change_property(out.prop, self._utf8, 8, piece)
        if not piece:
            del self._outgoing[key]  # the zero-length write ends the transfer

    def _xatom_atom(self) -> int:
        from Xlib import Xatom

        return int(Xatom.ATOM)
