"""SHA-256 of an upload computed in a worker thread, beside the writes of its chunks.

Hashing is most of what the host spends per byte of an upload (61 % of a 200 MiB store, the
rest the kernel's ``write`` and the final fsync). ``hashlib`` releases the GIL while it hashes
more than 2 KiB, and ``os.write`` while it writes, so a hash running in a thread of its own
overlaps the event loop's decoding and writing of the next chunks.

Contract of :class:`BackgroundDigest`:

- **Order**: the chunks are hashed in the order :meth:`~BackgroundDigest.update` was called.
  One worker thread (:data:`_WORKER`, shared by every upload of the host) runs the jobs first
  in, first out, so each upload's chunks follow each other, whatever else is hashed between.
- **Bounded memory**: at most :data:`DEPTH` chunks of one upload wait for, or are in, the
  hash; :meth:`~BackgroundDigest.update` waits (asynchronously: the loop serves the other
  viewers meanwhile) for the oldest before it queues another.
- **Nothing to clean up but the queue**: a hash holds no descriptor and cannot fail.
  :meth:`~BackgroundDigest.cancel` drops the jobs not yet started (the one running finishes
  on its own, a fraction of a millisecond) so an aborted upload frees its chunks at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
from collections import deque

__all__ = ["DEPTH", "BackgroundDigest"]

#: Chunks of one upload in the hash at most (one being hashed, one waiting): enough for the
#: hash of chunk n to overlap the write of chunk n + 1, and at most 2 × 256 KiB held.
DEPTH = 2

#: The host's one hashing thread. One, not a pool: the chunks of an upload must be hashed in
#: order, and the host has few cores to give.
_WORKER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rdesk-sha256")


class BackgroundDigest:
    """The SHA-256 of the chunks passed to :meth:`update`, hashed off the event loop."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._hash = hashlib.sha256()
        self._depth = depth
        self._pending: deque[asyncio.Future[None]] = deque()

    async def update(self, data: bytes) -> None:
        """Queue ``data`` behind the chunks queued before; returns once it is queued (after
        waiting for the oldest job if :data:`DEPTH` are already queued)."""
        while len(self._pending) >= self._depth:
            await self._pending.popleft()
        loop = asyncio.get_running_loop()
        self._pending.append(loop.run_in_executor(_WORKER, self._hash.update, data))

    async def hexdigest(self) -> str:
        """The digest of every chunk queued so far (waits for the queue to drain)."""
        while self._pending:
            await self._pending.popleft()
        return self._hash.hexdigest()

    def cancel(self) -> None:
        """Drop the queued jobs (an aborted upload); the digest is meaningless afterwards."""
        while self._pending:
            self._pending.popleft().cancel()
