"""What an asyncio task is waiting on, in one line: for logs of a stop that had to give up.

``repr(task)`` names only the outermost coroutine (``ViewerConnection.serve``), which says
nothing about what holds it; :func:`awaiting` follows the chain of awaits down to the
innermost one (``… → WebsocketTransport.close → Connection.close → Connection.drain``) and
the future it is parked on. Standard library only.
"""

from __future__ import annotations

import asyncio

__all__ = ["awaiting"]

#: Awaits followed at most (a chain this deep is a bug of its own).
MAX_DEPTH = 32


def awaiting(task: asyncio.Task[object]) -> str:
    """``"<task name>: outer → … → inner"``: the coroutines ``task`` is suspended in, outermost
    first, then what the innermost awaits when it is not a coroutine (a future, a task)."""
    names: list[str] = []
    step: object = task.get_coro()
    for _ in range(MAX_DEPTH):
        code = getattr(step, "cr_code", None)
        if code is None:
            break
        names.append(code.co_qualname)
        step = getattr(step, "cr_await", None)
    if step is not None and not hasattr(step, "cr_code"):
        names.append(type(step).__name__)
    return f"{task.get_name()}: {' → '.join(names) or repr(task)}"
