"""The viewer's pointer: buttons held on the host, motion coalesced, wheel detents.

No toolkit: :class:`Pointer` is given host pixel coordinates (the window maps them with
its :class:`~rdesk.client.tk.viewport.Viewport`) and sends through ``send(kind, *args)``,
the worker's queue: ``("pointer", x, y, buttons)`` and ``("wheel", x, y, dx, dy)``.
"""

from __future__ import annotations

from collections.abc import Callable

from rdesk.protocol import limits

__all__ = ["BUTTON_BITS", "WHEEL_BUTTONS", "Pointer", "wheel_steps"]

#: X11 button number -> the protocol's button bit (bit 0 = left).
BUTTON_BITS = {1: 1, 2: 2, 3: 4}
#: X11 wheel "buttons" 4-7 -> (dx, dy) detents.
WHEEL_BUTTONS = {4: (0, -1), 5: (0, 1), 6: (-1, 0), 7: (1, 0)}


class Pointer:
    """Where the pointer is and which buttons it holds on the host.

    :param send: queues one input event for the host.
    :param active: whether input goes to the host now; while not, nothing is sent (the
        button state is still followed, so a release after view-only ends is consistent).
    """

    def __init__(self, send: Callable[..., None], active: Callable[[], bool]) -> None:
        self._send = send
        self._active = active
        #: Protocol button bits held now.
        self.buttons = 0
        #: The last position sent (or clicked at).
        self.last: tuple[int, int] = (0, 0)
        self._motion: tuple[int, int] | None = None

    def moved(self, xy: tuple[int, int]) -> None:
        """The pointer moved to host pixel ``xy``: sent by the next :meth:`flush` only, so
        a burst of motion costs one message per tick."""
        self._motion = xy

    def flush(self) -> None:
        """Send the latest motion, if any and if it changed the position."""
        if self._motion is None:
            return
        xy, self._motion = self._motion, None
        if xy != self.last and self._active():
            self.last = xy
            self._send("pointer", *xy, self.buttons)

    def button(self, xy: tuple[int, int], number: int, down: bool) -> None:
        """X11 button ``number`` (1-3) went down or up at ``xy``: sent at once."""
        self._motion = None  # the click's position supersedes motion not yet sent
        bit = BUTTON_BITS[number]
        self.buttons = self.buttons | bit if down else self.buttons & ~bit
        self.last = xy
        if self._active():
            self._send("pointer", *xy, self.buttons)

    def wheel(self, xy: tuple[int, int], dx: int, dy: int) -> None:
        """Scroll ``dx``/``dy`` detents at ``xy`` (pending motion goes first)."""
        if not (dx or dy) or not self._active():
            return
        self.flush()
        self._send("wheel", *xy, dx, dy)

    def release_all(self) -> None:
        """Release every held button on the host, where the pointer last was."""
        if self.buttons and self._active():
            self._send("pointer", *self.last, 0)
        self.buttons = 0

    def forget(self) -> None:
        """Forget the held buttons without sending: the host released them."""
        self.buttons = 0


def wheel_steps(delta: int, shift: bool) -> tuple[int, int]:
    """``(dx, dy)`` detents for a ``<MouseWheel>`` event's ``delta`` (Shift: horizontal).

    Windows reports multiples of 120 per detent, macOS small counts; a positive delta
    scrolls up (negative dy). Clamped to the protocol's limit.
    """
    steps = delta // 120 if abs(delta) >= 120 else (1 if delta > 0 else -1 if delta else 0)
    steps = max(-limits.MAX_WHEEL_STEPS, min(limits.MAX_WHEEL_STEPS, -steps))
    return (steps, 0) if shift else (0, steps)
