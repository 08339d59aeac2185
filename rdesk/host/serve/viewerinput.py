"""One viewer's input into the host's display: :class:`ViewerInput`, owned by its
:class:`~rdesk.host.serve.connection.ViewerConnection`.

It decides whether the viewer may input now (the control board), injects through the host's
:class:`InputSink` in bounded slices, tracks what the viewer holds down (so a frozen or
departed viewer's keys can be released), audits dangerous key combinations and swallows the
blocked ones (``--block-keys``), and answers ``sync`` with the reason input is refused.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from rdesk.host.security.keypolicy import combination
from rdesk.host.serve.control import ControlBoard
from rdesk.protocol.access import Access
from rdesk.protocol.inputs import InputAck, Key, Pointer, Sync, Wheel
from rdesk.protocol.presence import LOCAL_USER

__all__ = ["DROPPED_LOG_INTERVAL", "INPUT_SLICE", "InputHost", "InputSink", "ViewerInput"]

#: Input events injected between two turns given to the rest of the host's loop.
INPUT_SLICE = 4
#: Input dropped for lack of control is logged at most this often per viewer (seconds).
DROPPED_LOG_INTERVAL = 1.0


class InputSink(Protocol):
    """Injects one viewer's input into the host's display (see :mod:`rdesk.host.input`)."""

    def pointer(self, owner: int, x: int, y: int, buttons: int) -> None: ...

    def wheel(self, owner: int, x: int, y: int, dx: int, dy: int) -> None: ...

    def key(self, owner: int, keysym: int, down: bool) -> None: ...

    def release_all(self, owner: int) -> None: ...


class InputHost(Protocol):
    """What a viewer's input needs of the server: who holds control, the injector, the log."""

    board: ControlBoard
    injector: InputSink | None

    def event(self, kind: str, **fields: object) -> None: ...


class ViewerInput:
    """The input of viewer ``viewer_id`` (``access``) on ``host``; ``blocked`` holds the
    combinations refused (``--block-keys``)."""

    def __init__(self, host: InputHost, viewer_id: int, access: Access,
                 blocked: frozenset[str]) -> None:
        self.host = host
        self.viewer_id = viewer_id
        self.access = access
        self._blocked = blocked
        #: What this viewer holds down on the host (keysyms, and a button mask).
        self._held_keys: set[int] = set()
        self._held_buttons = 0
        #: Keys swallowed for a blocked combination (their autorepeats and releases too).
        self._swallowed: set[int] = set()
        self._injected = 0
        self._dropped_logged = -1e9

    @property
    def holds(self) -> bool:
        """Whether the viewer holds a key or a button down on the host."""
        return bool(self._held_keys or self._held_buttons)

    async def handle(self, message: Pointer | Wheel | Key | Sync) -> InputAck | None:
        """Inject ``message`` if the viewer may input; a ``sync``'s answer to send back."""
        board, injector = self.host.board, self.host.injector
        may = board.may_input(self.viewer_id)
        allowed = may and injector is not None
        if isinstance(message, Sync):
            reason = "" if allowed else (
                self._no_control_reason() if not may else "input is disabled on this host"
            )
            return InputAck(message.id, allowed, reason)
        if not allowed:
            self._note_dropped(time.monotonic())
            return None
        assert injector is not None
        # Injection is synchronous X work on the host's loop: a flood is served in bounded
        # slices, giving every other viewer a turn between two slices.
        self._injected += 1
        if self._injected % INPUT_SLICE == 0:
            await asyncio.sleep(0)
        if isinstance(message, Pointer):
            self._held_buttons = message.buttons
            injector.pointer(self.viewer_id, message.x, message.y, message.buttons)
        elif isinstance(message, Wheel):
            injector.wheel(self.viewer_id, message.x, message.y, message.dx, message.dy)
        elif self._key_allowed(message.keysym, message.down):
            injector.key(self.viewer_id, message.keysym, message.down)
        return None

    def release_held(self, reason: str) -> None:
        """Release whatever the viewer holds down on the host, and log why."""
        injector = self.host.injector
        if injector is not None:
            injector.release_all(self.viewer_id)
        self.host.event("input_released", viewer=self.viewer_id, reason=reason,
                        keys=len(self._held_keys), buttons=bin(self._held_buttons).count("1"))
        self._held_keys.clear()
        self._held_buttons = 0

    def _key_allowed(self, keysym: int, down: bool) -> bool:
        """Track held keys; audit every dangerous combination, refuse the blocked ones (and
        their autorepeats and releases)."""
        if not down:
            self._held_keys.discard(keysym)
            if keysym in self._swallowed:
                self._swallowed.discard(keysym)
                return False
            return True
        if keysym in self._swallowed:
            return False  # autorepeat of a blocked key
        if keysym not in self._held_keys:  # a new press, not an autorepeat
            combo = combination(self._held_keys, keysym)
            if combo is not None:
                blocked = combo in self._blocked
                self.host.event("key_combo", viewer=self.viewer_id, combination=combo,
                                action="blocked" if blocked else "allowed")
                if blocked:
                    self._swallowed.add(keysym)
                    return False
        self._held_keys.add(keysym)
        return True

    def _note_dropped(self, now: float) -> None:
        """Log input dropped for lack of control, at most once a second."""
        if now - self._dropped_logged >= DROPPED_LOG_INTERVAL:
            self._dropped_logged = now
            self.host.event("input_dropped", viewer=self.viewer_id, reason="no control")

    def _no_control_reason(self) -> str:
        board = self.host.board
        if board.holder == LOCAL_USER:
            return "no control: the host's local user holds control"
        if self.access is not Access.CONTROL and board.holder != self.viewer_id:
            return "view-only: this viewer does not hold control"
        holder = board.members.get(board.holder)
        if holder is not None:
            return f"no control: viewer #{holder.id} {holder.name[:40]} holds control"
        return "no control: request control first"
