"""Waiting with a timeout without ever losing a cancellation: :func:`wait_at_most`.

Python 3.10 and 3.11's ``asyncio.wait_for`` returns the result instead of raising when the task
waiting is cancelled in the same turn of the loop as the awaited thing completes (CPython
gh-86296, fixed in 3.12). A loop that waits that way for frequent wake-ups (X damage, acks)
then runs on after its cancel, and whatever awaits its end (a host stopping) waits forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

__all__ = ["raise_if_cancelled", "wait_at_most"]


async def wait_at_most(awaitable: Awaitable[object], timeout: float | None) -> bool:
    """Await ``awaitable`` for at most ``timeout`` seconds (``None``: no limit); whether it
    finished. An exception it finished with is raised here (never left unretrieved). A
    cancellation of the caller always propagates; the awaitable left unfinished is
    cancelled."""
    inner = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({inner}, timeout=timeout)
    finally:
        if not inner.done():
            inner.cancel()
    if done:
        inner.result()
    return bool(done)


def raise_if_cancelled() -> None:
    """Raise :class:`asyncio.CancelledError` if the running task was asked to cancel: for a
    loop around ``asyncio.wait_for`` whose value it needs (a ``recv``), where the cancel may
    have been swallowed by the bug above."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
