"""The viewer window's dialogs: the password, an unknown host key, a changed host key.

A question comes from the network worker with a ``concurrent.futures.Future`` that the
dialog answers (``None`` for a cancelled password). A changed key is not a question: the
dialog shows both fingerprints and offers only Disconnect.
"""

from __future__ import annotations

import concurrent.futures
import tkinter
import tkinter.simpledialog
from collections.abc import Callable
from tkinter import messagebox

from rdesk.client.connection import HostAddress
from rdesk.client.known_hosts import HostKeyMismatch

__all__ = ["ask_password", "ask_unknown_key", "show_changed_key"]


def ask_password(
    root: tkinter.Tk, address: HostAddress, future: concurrent.futures.Future[str | None]
) -> None:
    """Ask for the password of ``address``; answer ``future`` (``None``: cancelled)."""
    answer = tkinter.simpledialog.askstring(
        "rdesk — password", f"Password for {address}:", show="*", parent=root
    )
    if not future.done():
        future.set_result(answer)


def ask_unknown_key(
    root: tkinter.Tk, address: HostAddress, future: concurrent.futures.Future[bool], fp: str
) -> None:
    """Ask whether to trust host key ``fp`` of a first-contact host; answer ``future``."""
    trusted = messagebox.askyesno(
        "rdesk — unknown host",
        f"The host {address} is not known.\n\n"
        f"Its key fingerprint is\n{fp}\n\n"
        "Compare it with the one `rdesk host` printed.\n"
        "Trust this host and remember its key?",
        default=messagebox.NO, icon=messagebox.WARNING, parent=root,
    )
    if not future.done():
        future.set_result(bool(trusted))


def show_changed_key(
    root: tkinter.Tk, address: HostAddress, exc: HostKeyMismatch, disconnect: Callable[[], None]
) -> None:
    """Show both fingerprints of a changed host key; every way out calls ``disconnect``."""
    dialog = tkinter.Toplevel(root)
    dialog.title("rdesk — host key CHANGED")
    tkinter.Label(
        dialog, justify="left", padx=16, pady=12,
        text=(
            f"The key of {address} has CHANGED.\n\n"
            f"expected: {exc.expected}\n"
            f"offered:  {exc.actual}\n\n"
            "Someone may be intercepting the connection, or the host's key was\n"
            "replaced. Nothing was sent. If the change is expected, remove the old\n"
            "key from known_hosts (or pass --fingerprint) and connect again."
        ),
    ).pack()
    button = tkinter.Button(dialog, text="Disconnect", command=disconnect, default="active")
    button.pack(pady=(0, 12))
    dialog.protocol("WM_DELETE_WINDOW", disconnect)
    for sequence in ("<Return>", "<Escape>", "<KP_Enter>"):
        dialog.bind(sequence, lambda _e: disconnect())
    dialog.transient(root)
    button.focus_force()
