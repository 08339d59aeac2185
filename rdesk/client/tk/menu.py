"""The viewer window's menu (F8): view, keys the window cannot type, files, connection."""

from __future__ import annotations

import tkinter
from collections.abc import Callable
from typing import TYPE_CHECKING

from rdesk.client.tk.monitors import monitor_menu
from rdesk.client.tk.transfer import TransferWindow
from rdesk.client.tk.viewport import FIT, ONE_TO_ONE
from rdesk.protocol.keysyms import KEYSYMS

if TYPE_CHECKING:
    from rdesk.client.tk.window import ViewerWindow

__all__ = ["build_menu"]

#: Keys the window keeps for itself (hotkeys) or that a desktop may swallow, sent on demand.
SEND_KEYS = ("F8", "F9", "F11", "Escape")


def build_menu(view: ViewerWindow) -> tkinter.Menu:
    """The popup menu of ``view``; every entry calls one of the window's actions."""
    menu = tkinter.Menu(view.root, tearoff=0)
    menu.add_command(label="Full screen", accelerator="F11", command=view.toggle_fullscreen)
    menu.add_radiobutton(label="Scale to window", variable=view.scale_mode, value=FIT,
                         command=view.on_scale_mode)
    menu.add_radiobutton(label="Actual size (1:1)", variable=view.scale_mode,
                         value=ONE_TO_ONE, command=view.on_scale_mode)
    menu.add_checkbutton(label="Resize desktop to window", variable=view.fit.on,
                         command=view.fit.toggled)
    menu.add_command(label="Statistics overlay", accelerator="F9", command=view.toggle_overlay)
    menu.add_cascade(label="Monitor", menu=monitor_menu(menu, view))
    menu.add_separator()
    menu.add_command(label="Send Ctrl+Alt+Del", command=view.send_ctrl_alt_del)
    send = tkinter.Menu(menu, tearoff=0)
    for name in SEND_KEYS:
        send.add_command(label=name, command=_sender(view, KEYSYMS[name]))
    menu.add_cascade(label="Send key", menu=send)
    menu.add_command(label="Release all keys", command=view.release_all)
    # K (underlined) toggles it from the open menu: the way out of the grab by keyboard alone.
    menu.add_checkbutton(label="Keyboard grab", underline=0, variable=view.grab_keys)
    menu.add_checkbutton(label="View only", variable=view.view_only, command=view.on_view_only)
    menu.add_separator()
    menu.add_command(label="Send files…", command=lambda: TransferWindow.of(view).choose_and_send())
    menu.add_command(label="Receive files…",
                     command=lambda: TransferWindow.of(view).choose_and_receive())
    menu.add_separator()
    menu.add_command(label="Reconnect", command=view.worker.reconnect)
    menu.add_command(label="Disconnect", command=view.close)
    return menu


def _sender(view: ViewerWindow, keysym: int) -> Callable[[], None]:
    return lambda: view.send_keys(keysym)
