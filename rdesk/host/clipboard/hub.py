"""The host's clipboard, shared by every viewer: the X selections, the policy, the cap.

One :class:`ClipboardHub` per host. It keeps the host's latest text per selection (from the X
watch, or set by a viewer), hands the host's changes to every viewer's
:class:`~rdesk.host.clipboard.link.ClipboardLink`, and writes a viewer's text into the X
selection (and out to the other viewers). The X side is any :class:`SelectionSink`
(:class:`~rdesk.host.clipboard.xselection.XSelections` on a real host); its callbacks come from
its own thread and are handed to the event loop here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rdesk.host.clipboard.link import ClipboardLink

__all__ = ["ClipboardHub", "SelectionSink"]


class SelectionSink(Protocol):
    """Where a viewer's text goes on the host (an X selection owner)."""

    def set_text(self, selection: str, text: str) -> None: ...

    def close(self) -> None: ...


class ClipboardHub:
    """Policy ``policy`` (``--clipboard``), cap ``cap`` bytes either way, ``selections`` synced.

    ``event(kind, **fields)`` is the host's audit hook: it gets direction, size, selection and
    viewer, never the text.
    """

    def __init__(
        self,
        policy: str,
        cap: int,
        selections: tuple[str, ...],
        event: Callable[..., None],
    ) -> None:
        self.policy = policy
        self.cap = cap
        self.selections = selections
        self.event = event
        self.sink: SelectionSink | None = None
        #: The host's latest text per selection.
        self.current: dict[str, str] = {}
        self._links: set[ClipboardLink] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, sink: SelectionSink, loop: asyncio.AbstractEventLoop) -> None:
        """Use ``sink`` for the host side; its thread's callbacks run on ``loop``."""
        self.sink, self._loop = sink, loop

    # --- from the X thread ---------------------------------------------------------------------

    def host_text_threadsafe(self, selection: str, text: str) -> None:
        """The host's ``selection`` now holds ``text`` (called from the X thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.host_text, selection, text)

    def host_refused_threadsafe(self, selection: str, reason: str) -> None:
        """The host's new ``selection`` text was not taken (called from the X thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.host_refused, selection, reason)

    # --- on the loop ---------------------------------------------------------------------------

    def host_text(self, selection: str, text: str) -> None:
        """Record the host's new text and offer it to every viewer the policy lets have it."""
        self.current[selection] = text
        for link in list(self._links):
            link.push(selection, text)

    def host_refused(self, selection: str, reason: str) -> None:
        self.current.pop(selection, None)  # what viewers could fetch is no longer the host's
        self.event("clipboard", direction="to-viewer", selection=selection, reason=reason)

    def from_viewer(self, source: ClipboardLink, selection: str, text: str) -> None:
        """A viewer's accepted ``text``: into the X selection, and out to the other viewers."""
        self.current[selection] = text
        if self.sink is not None:
            self.sink.set_text(selection, text)
        for link in list(self._links):
            if link is not source:
                link.push(selection, text)

    def join(self, link: ClipboardLink) -> None:
        self._links.add(link)

    def leave(self, link: ClipboardLink) -> None:
        self._links.discard(link)

    def close(self) -> None:
        """Stop the X side."""
        if self.sink is not None:
            self.sink.close()
            self.sink = None
