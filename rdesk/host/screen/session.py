"""The desktop session run inside ``rdesk host --virtual`` (``--session CMD``).

A virtual display alone is a black screen; like Xvnc's ``xstartup`` or ``xpra start
--start=…``, the host starts a session in it: by default a light window manager and a terminal
when they are installed (Debian's ``openbox`` and ``xterm``), else the command given with
``--session``. The session runs in its own process group with ``DISPLAY`` and ``XAUTHORITY``
set, so everything it starts is ended with it when the host stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from rdesk.host.screen.virtual import VirtualDisplayError

__all__ = ["DEFAULT_SESSION_HINT", "DesktopSession", "SessionError", "default_session"]

#: What to install for the default session, said when it cannot run.
DEFAULT_SESSION_HINT = (
    "install a window manager and a terminal (sudo apt-get install openbox xterm) "
    "or pass --session CMD"
)


class SessionError(VirtualDisplayError):
    """The session command could not be started; ``str()`` is one line (a kind of
    :class:`VirtualDisplayError`: the virtual desktop could not be had)."""


def default_session(
    which: Callable[[str], str | None] = shutil.which,
) -> list[str] | None:
    """The default session's argv, or ``None`` when neither part is installed.

    ``openbox`` with ``xterm`` started from it; either alone when only it is there. The
    window manager is the session's lifetime: closing the terminal keeps the desktop.
    ``which`` is :func:`shutil.which` (a parameter so the choice is testable).
    """
    wm, term = which("openbox"), which("xterm")
    if wm and term:
        return [wm, "--startup", term]
    if wm:
        return [wm]
    if term:
        return [term]
    return None


class DesktopSession:
    """One session process group on a display; :meth:`stop` ends the whole group.

    ``argv`` is the command (a list, or a string split like a shell would without running
    one). The environment is ours plus ``DISPLAY`` and, when given, ``XAUTHORITY``.
    """

    def __init__(
        self,
        argv: Sequence[str] | str,
        display: str,
        xauthority: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = shlex.split(argv) if isinstance(argv, str) else list(argv)
        if not self.argv:
            raise SessionError("--session: the command is empty")
        base = dict(os.environ if env is None else env)
        base["DISPLAY"] = display
        if xauthority is not None:
            base["XAUTHORITY"] = xauthority
        self.env = base
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DesktopSession:
        """Start the command in a new process group; raise :class:`SessionError` if it cannot."""
        try:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise SessionError(
                f"cannot start the session {self.argv[0]!r}: {exc.strerror}"
            ) from None
        return self

    @property
    def pid(self) -> int | None:
        """The session leader's process id while started."""
        return None if self.proc is None else self.proc.pid

    async def wait(self) -> int:
        """Return the session's exit status once it has ended (without blocking the loop).

        Watches a pidfd where Linux has one (woken the moment the process ends), else polls.
        """
        proc = self.proc
        if proc is None:
            raise SessionError("the session was not started")
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            while proc.poll() is None:
                await asyncio.sleep(0.25)
            return proc.returncode
        try:
            ended: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not ended.done():
                    ended.set_result(None)

            loop.add_reader(fd, readable)
            try:
                if proc.poll() is None:
                    await ended
            finally:
                loop.remove_reader(fd)
        finally:
            os.close(fd)
        return proc.wait()

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the session's process group, SIGKILL what remains after ``grace``; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the leader's pid is the group's id
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        # Children the leader left behind (a terminal started by the WM) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()
