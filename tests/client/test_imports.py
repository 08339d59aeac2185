"""The client library and its headless tools load without a toolkit: Tk is imported only by
the windows (``rdesk.client.tk.window``, ``rdesk.client.tk.player``)."""

from __future__ import annotations

import subprocess
import sys

HEADLESS = (
    "rdesk.client",
    "rdesk.client.connection",
    "rdesk.client.watch",
    "rdesk.client.player",
    "rdesk.client.tk",
    "rdesk.client.tk.keyboard",
    "rdesk.client.tk.keys",
    "rdesk.client.tk.overlay",
    "rdesk.client.tk.pointer",
    "rdesk.client.tk.viewport",
    "rdesk.client.tk.worker",
)


def _loads_tkinter(*modules: str) -> bool:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "print('tkinter' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_the_headless_modules_do_not_import_tk() -> None:
    assert not _loads_tkinter(*HEADLESS)


def test_the_windows_do() -> None:  # the check above can tell
    assert _loads_tkinter("rdesk.client.tk.window")
    assert _loads_tkinter("rdesk.client.tk.player")
