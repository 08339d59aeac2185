"""The loop that runs a :class:`~rdesk.protocol.session.Session`'s timers on a connection.

The session knows its deadlines (the handshake's, the next keepalive ping, the pong a ping
waits for) but never reads a clock. :class:`SessionTimers` is the one task per connection
that does: it sleeps until :meth:`Session.next_deadline`, calls :meth:`Session.handle_timer`
and sends the frames that returns (keepalive pings). When the peer is too late the session
raises :class:`~rdesk.protocol.errors.RemoteProtocolError` (``HANDSHAKE_TIMEOUT`` or
``UNRESPONSIVE``) and :meth:`SessionTimers.run` ends with it, for its owner to close the
connection with that code and reason.

The clock and the sleep are parameters, so the loop runs on a fake clock in the tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

from rdesk.protocol.session import Session

__all__ = ["SessionTimers"]

Send = Callable[[str | bytes], Awaitable[None]]


class SessionTimers:
    """Fires ``session``'s timers on time and sends what they produce through ``send``.

    :param clock: the time, in the seconds the session was created with (monotonic).
    :param sleep: waits that many seconds (:func:`asyncio.sleep`).

    Whoever changes the session in a way that may bring a deadline *earlier* than the one
    being slept to (the handshake completing, an on-demand :meth:`Session.ping`) calls
    :meth:`poke`. A deadline that moves later needs nothing: the loop wakes at the old
    one, finds nothing due, and sleeps again.
    """

    def __init__(
        self,
        session: Session,
        send: Send,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._send = send
        self._clock = clock
        self._sleep = sleep
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """The session's deadlines may have moved earlier: look at them again now."""
        self._wake.set()

    async def run(self) -> NoReturn:
        """Fire the timers until cancelled.

        Raises :class:`~rdesk.protocol.errors.RemoteProtocolError` when a deadline passes
        (the session says which), or what ``send`` raises. A closed session has no
        deadlines: the loop then waits, until cancelled, and never ends by itself.
        """
        while True:
            # Cleared before reading the deadlines: a poke from now on is seen by _nap.
            self._wake.clear()
            for frame in self._session.handle_timer(self._clock()):
                await self._send(frame)
            deadline = self._session.next_deadline()
            await self._nap(None if deadline is None else max(0.0, deadline - self._clock()))

    async def _nap(self, seconds: float | None) -> None:
        """Wait ``seconds`` (``None``: forever) or until :meth:`poke`, whichever is first."""
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._wake.wait())]
        if seconds is not None:
            waits.append(asyncio.ensure_future(self._sleep(seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
