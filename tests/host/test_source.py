"""The capture loop's waiting on change notification (rdesk/host/source.py)."""

from __future__ import annotations

import asyncio
import socket

from rdesk.host.source import _readable


async def test_readable_returns_on_data_and_leaves_no_reader_behind() -> None:
    """A reader left registered on a connection with unread data wakes the event loop on every
    iteration (a busy spin); the wait must unregister it whichever way it ends."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    try:
        b.send(b"x")  # readable, and stays so: nobody reads it
        await asyncio.wait_for(_readable(a.fileno(), 30.0), 30.0)
        assert loop.remove_reader(a.fileno()) is False  # nothing was registered any more
        a.recv(1)
        await _readable(a.fileno(), 0.01)  # the timeout path
        assert loop.remove_reader(a.fileno()) is False
    finally:
        a.close()
        b.close()
