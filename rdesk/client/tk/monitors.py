"""The F8 menu's "Monitor" cascade: the host's monitors, and switching between them.

Filled each time it opens from the connection's ``monitors`` (rdesk/protocol/monitors.py);
choosing one asks the host (on the worker's loop) to share it. Only the viewer in control may
switch: the host answers anyone else with a notice.
"""

from __future__ import annotations

import asyncio
import tkinter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rdesk.protocol.monitors import ALL

if TYPE_CHECKING:
    from rdesk.client.connection import Connection

__all__ = ["monitor_menu"]


def monitor_menu(parent: tkinter.Menu, view: Any) -> tkinter.Menu:
    """A cascade of ``parent`` listing ``view.conn``'s monitors; ``view.worker.loop`` runs the
    request. The radio mark follows the monitor the host says it shares."""
    menu = tkinter.Menu(parent, tearoff=0)
    chosen = tkinter.IntVar(parent, ALL)

    def fill() -> None:
        menu.delete(0, "end")
        conn: Connection | None = view.conn
        if conn is None or len(conn.monitors) <= 1:
            menu.add_command(label="(one monitor)", state="disabled")
            return
        chosen.set(conn.monitor)
        entries = [(ALL, "All monitors")] + [
            (m.index, f"{m.index}: {m.name} {m.width}×{m.height}")
            for m in sorted(conn.monitors.values(), key=lambda m: m.index)
        ]
        for index, label in entries:
            menu.add_radiobutton(label=label, variable=chosen, value=index,
                                 command=_selector(view, index))

    menu.configure(postcommand=fill)
    return menu


def _selector(view: Any, index: int) -> Callable[[], None]:
    def select() -> None:
        conn, loop = view.conn, view.worker.loop
        if conn is not None and loop is not None and not conn.closed.done():
            asyncio.run_coroutine_threadsafe(conn.select_monitor(index), loop)

    return select
