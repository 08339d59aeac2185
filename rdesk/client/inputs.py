"""The input and requests a viewer sends the host: :class:`InputMethods`, the part of
:class:`~rdesk.client.running.Connection` that only builds a message and sends it.

Each method raises :class:`~rdesk.client.errors.ConnectionLost` once the connection has
ended (the host enforces roles: a view-only viewer's input is refused there, not here).
"""

from __future__ import annotations

from rdesk.protocol.inputs import Key, Pointer, Sync, Wheel
from rdesk.protocol.messages import Prefs, Refresh
from rdesk.protocol.presence import AnswerControl, ReleaseControl, RequestControl
from rdesk.protocol.resize import Resize

__all__ = ["InputMethods", "Outgoing"]

#: What :meth:`InputMethods._send` takes.
Outgoing = (Pointer | Wheel | Key | Sync | Refresh | RequestControl
            | ReleaseControl | AnswerControl | Prefs | Resize)


class InputMethods:
    """Pointer, wheel, keys, control requests, preferences, refresh: each one message."""

    async def _send(self, message: Outgoing) -> None:
        """Send ``message`` (the connection does it; raises once it has ended)."""
        raise NotImplementedError

    async def pointer(self, x: int, y: int, buttons: int = 0) -> None:
        """Move the pointer to host pixel (x, y) with ``buttons`` (bit 0 = left) held."""
        await self._send(Pointer(x, y, buttons))

    async def wheel(self, x: int, y: int, dx: int = 0, dy: int = 0) -> None:
        """Scroll ``dy`` detents down (negative: up) and ``dx`` right at (x, y)."""
        await self._send(Wheel(x, y, dx, dy))

    async def key(self, keysym: int, down: bool) -> None:
        """Press (``down``) or release an X11 keysym."""
        await self._send(Key(keysym, down))

    async def request_control(self) -> None:
        """Ask for control; the holder or the host's user answers (watch :attr:`holder`)."""
        await self._send(RequestControl())

    async def release_control(self) -> None:
        """Give control up."""
        await self._send(ReleaseControl())

    async def prefs(self, quality: int = 0, max_fps: int = 0, max_bandwidth: int = 0) -> None:
        """Cap this viewer's JPEG quality, update rate and bits/s; 0 leaves one automatic."""
        await self._send(Prefs(quality, max_fps, max_bandwidth))

    async def refresh(self) -> None:
        """Ask the host for the whole screen again."""
        await self._send(Refresh())
