"""A thread that owns one connection and can be woken or stopped from any thread:
:class:`ConnectionThread`, what the host's X watchers (cursor, selections) share.

The thread waits in ``select`` on the connection and :attr:`wake_r`; :meth:`wake` makes it look
at its queue, :meth:`close` stops it, joins it, closes the connection and the pipe.
Standard library only: the connection is any object with ``fileno()`` and ``close()``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

__all__ = ["ConnectionThread"]


class ConnectionThread:
    """Subclasses set ``self._conn``, call :meth:`_start_thread` last in ``__init__``, and
    loop in :meth:`_run` while not :attr:`_stopping`."""

    _conn: Any

    def _start_thread(self, name: str) -> None:
        self.wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        """Make the thread look at its work now (from any thread)."""
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Stop the thread, close the connection; idempotent."""
        if self._stopping:
            return
        self._stopping = True
        os.write(self._wake_w, b"q")
        self._thread.join(5)
        with contextlib.suppress(Exception):
            self._conn.close()
        os.close(self.wake_r)
        os.close(self._wake_w)
