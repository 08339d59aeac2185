"""The pool that checks credentials: its own threads, never the encoders' (issue 20).

scrypt is deliberately costly (tens of milliseconds of CPU per check). Run in the event loop's
default executor it queued ahead of the frame encoder's work, so a burst of wrong guesses froze
every viewer. :class:`AuthPool` gives checking its own small, fixed set of threads: however
many guesses arrive, at most ``workers`` hashes run at once and the rest wait their turn, while
the encoder keeps its threads and the other cores. The queue itself is bounded by the host's
cap on unauthenticated connections (each holds at most one check).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["AuthPool"]

T = TypeVar("T")


class AuthPool:
    """A fixed number of threads for credential checks; :meth:`close` it when the host stops."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("the authentication pool needs at least one thread")
        self.workers = workers
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="rdesk-auth")
        #: Checks submitted and not finished (running or waiting).
        self.in_flight = 0
        #: The most checks that were ever in flight at once.
        self.peak = 0

    async def run(self, check: Callable[[str], T], secret: str) -> T:
        """``check(secret)`` in one of the pool's threads."""
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, check, secret)
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        """Stop the threads (checks still queued are cancelled)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
