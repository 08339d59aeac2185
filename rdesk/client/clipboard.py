"""The viewer's clipboard: the host's texts as they arrive, and sending ours (``clip_*``).

A :class:`ClipboardState` lives on every :class:`~rdesk.client.running.Connection`
(``conn.clipboard``): it reassembles the host's offers under its own cap (1 MiB by default)
and remembers the latest text per selection and the host's answers. :func:`set_text` and
:func:`get_text` are what ``rdesk clip`` and the Tk window use; ``on_text`` callbacks let a
face put the host's text into its local clipboard.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from rdesk.protocol.clipboard import (
    Assembler,
    ClipData,
    ClipGet,
    ClipOffer,
    ClipResult,
    chunks,
    refusal,
)

if TYPE_CHECKING:
    from rdesk.client.running import Connection

__all__ = ["DEFAULT_CAP", "ClipboardRefused", "ClipboardState", "get_text", "set_text"]

_V = TypeVar("_V")

#: Largest text a viewer takes from the host, or sends, by default (UTF-8 bytes).
DEFAULT_CAP = 1 << 20


class ClipboardRefused(Exception):
    """The host (or this viewer's cap) refused a text; ``str()`` is the one-line reason."""


class ClipboardState:
    """What the viewer knows of the clipboard exchange. No I/O: :meth:`receive` returns the
    reply to send, if any."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self._assembler = Assembler(cap)
        #: The host's latest text per selection.
        self.texts: dict[str, str] = {}
        #: Texts by the offer id they came under (answers to ``clip_get``), bounded.
        self.by_id: dict[int, str] = {}
        #: The host's answers to our offers and gets, by id, bounded.
        self.results: dict[int, ClipResult] = {}
        #: Called with (selection, text) for every text the host sends.
        self.on_text: list[Callable[[str, str], None]] = []
        self._ids = itertools.count(1)

    def set_cap(self, cap: int) -> None:
        """Take and send at most ``cap`` bytes from now on (between offers)."""
        self.cap = cap
        self._assembler = Assembler(cap)

    def next_id(self) -> int:
        """A fresh id for an offer or a get (the host's own offers have the top bit set)."""
        return next(self._ids) & 0x7FFFFFFF

    def receive(self, message: object) -> ClipResult | None:
        """Take one ``clip_*`` message from the host; return the ``clip_result`` to send back."""
        if isinstance(message, ClipResult):
            _remember(self.results, message.id, message)
            return None
        if isinstance(message, ClipOffer):
            reason = self._assembler.offer(message)
            return None if reason is None else ClipResult(message.id, False, reason)
        if isinstance(message, ClipData):
            done = self._assembler.data(message)
            if done is None:
                return None
            offer, text, reason = done
            if text is None:
                _remember(self.results, offer.id, ClipResult(offer.id, False, reason or ""))
                return ClipResult(offer.id, False, reason or "")
            self.texts[offer.selection] = text
            _remember(self.by_id, offer.id, text)
            for callback in self.on_text:
                callback(offer.selection, text)
            return ClipResult(offer.id, True, "")
        return None


def _remember(table: dict[int, _V], key: int, value: _V) -> None:
    table[key] = value
    while len(table) > 64:  # ids are answered at once: an old one is never waited for
        del table[next(iter(table))]


async def set_text(
    conn: Connection,
    text: str,
    selection: str = "clipboard",
    timeout: float = 30.0,
    *,
    cap: int | None = None,
) -> None:
    """Put ``text`` into the host's ``selection``; raise :class:`ClipboardRefused` with the
    host's reason (or this side's: over the cap, a NUL) if it is not taken. ``cap`` replaces
    the viewer's own limit first."""
    state = conn.clipboard
    if cap is not None:
        state.set_cap(cap)
    reason = refusal(text, state.cap)
    if reason is not None:
        raise ClipboardRefused(reason)
    offer_id = state.next_id()
    for message in chunks(offer_id, text, selection):
        await conn.send_clipboard(message)
        if offer_id in state.results:
            break  # refused at the offer: the rest would be dropped anyway
    await conn.wait_for(lambda: offer_id in state.results, timeout)
    result = state.results[offer_id]
    if not result.ok:
        raise ClipboardRefused(result.reason)


async def get_text(
    conn: Connection,
    selection: str = "clipboard",
    timeout: float = 30.0,
    *,
    cap: int | None = None,
) -> str:
    """The host's ``selection`` text; :class:`ClipboardRefused` with the reason if refused (by
    the host, or here: over ``cap``, the viewer's own limit)."""
    state = conn.clipboard
    if cap is not None:
        state.set_cap(cap)
    get_id = state.next_id()
    await conn.send_clipboard(ClipGet(get_id, selection))
    await conn.wait_for(lambda: get_id in state.by_id or get_id in state.results, timeout)
    if get_id in state.by_id:
        return state.by_id[get_id]
    raise ClipboardRefused(state.results[get_id].reason)
