"""``rdesk host --virtual``: a private X server (Xvfb or Xvnc) with a cookie, and a session in it.

:func:`start_virtual_desktop` starts both and registers their teardown on an
:class:`contextlib.ExitStack` (session first, then the server, then the cookie). The host's own
X clients (capture, DAMAGE, input injection, clipboard) find the cookie through
``XAUTHORITY``, set for this process while the desktop runs and restored after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from rdesk.host.screen.session import (
    DEFAULT_SESSION_HINT,
    DesktopSession,
    default_session,
)
from rdesk.host.screen.virtual import VirtualDisplay

__all__ = ["NO_SESSION", "VirtualDesktop", "start_virtual_desktop"]

#: ``--session none``: a bare display, the host runs until stopped.
NO_SESSION = "none"


@dataclass
class VirtualDesktop:
    """A running virtual display and the session in it (``None``: a bare display)."""

    server: VirtualDisplay
    session: DesktopSession | None

    @property
    def display(self) -> str:
        """The display name (``":N"``)."""
        return self.server.display

    async def until_ended(self, keep_running: bool, say: Callable[[str], None]) -> None:
        """Return when the session has ended and the host should stop; never, for a bare
        display or with ``keep_running`` (the host then stops on a signal only)."""
        if self.session is not None:
            status = await self.session.wait()
            if not keep_running:
                say(f"rdesk host: the session ended (status {status}); stopping")
                return
            say(f"rdesk host: the session ended (status {status}); still hosting (--keep-running)")
        await asyncio.Event().wait()


def start_virtual_desktop(
    width: int,
    height: int,
    session: str | None,
    stack: contextlib.ExitStack,
    say: Callable[[str], None],
    server: str = "xvfb",
) -> VirtualDesktop:
    """Start the X server ``server`` (rdesk/host/screen/virtual.py) with a cookie and
    ``session`` in it; teardown goes on ``stack``.

    ``session`` ``None`` is the default session (:func:`default_session`); when that is not
    installed the display stays bare and ``say`` tells what to install. ``"none"`` asks for a
    bare display. Raises :class:`~rdesk.host.screen.virtual.VirtualDisplayError` or
    :class:`~rdesk.host.screen.session.SessionError` (one line each).
    """
    display = stack.enter_context(VirtualDisplay(width, height, authorize=True, server=server))
    assert display.xauthority is not None  # authorize=True always writes one
    _set_env(stack, "XAUTHORITY", str(display.xauthority))
    argv: list[str] | str | None
    if session is None:
        argv = default_session()
        if argv is None:
            say(f"rdesk host: no desktop session: {DEFAULT_SESSION_HINT}")
    elif session.strip() == NO_SESSION:
        argv = None
    else:
        argv = session
    if argv is None:
        return VirtualDesktop(display, None)
    runner = DesktopSession(argv, display.display, str(display.xauthority))
    runner.start()
    stack.callback(runner.stop)
    return VirtualDesktop(display, runner)


def _set_env(stack: contextlib.ExitStack, name: str, value: str) -> None:
    old = os.environ.get(name)
    os.environ[name] = value

    def restore() -> None:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old

    stack.callback(restore)
