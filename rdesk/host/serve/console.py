"""The host's console: the local user's commands on the host's terminal.

Lines typed on the host's standard input (when it is a terminal, or when asked to read it):

    viewers                 who is connected and who holds control
    invite ROLE [MINUTES]   a one-time invite code (ROLE: control or view; default 30 minutes)
    accept N | reject N     answer viewer N's request to connect (with --consent ask; the
                            consent desk also takes answers from `rdesk consent`)
    grant N | deny N        answer viewer N's request for control
    take | release          take control back from the viewers / hand it back
    kick N                  disconnect viewer N
    status                  counts that should come back down: viewers, asyncio tasks,
                            threads, open file descriptors, live video encoders
                            (docs/reliability.md)
    help

The console only calls the server's public methods; it holds no rules of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from rdesk.host.security.invites import InviteBook
from rdesk.host.serve.consent import ConsentDesk, Request
from rdesk.protocol.presence import LOCAL_USER

__all__ = ["HostConsole", "HELP", "status_line"]

HELP = """commands:
  viewers                 who is connected and who holds control
  invite ROLE [MINUTES]   one-time invite code for ROLE (control|view), default 30 minutes
  accept N | reject N     answer viewer N's request to connect (--consent ask)
  grant N | deny N        answer viewer N's request for control
  take | release          take control back from the viewers / hand it back
  kick N                  disconnect viewer N
  status                  viewers, tasks, threads, open descriptors and video encoders now"""


#: Name prefixes of the threads of pools (encoders, password checks, asyncio's executor):
#: they start lazily, up to their pool's size, and stay.
POOL_THREADS = ("rdesk-encode", "rdesk-auth", "asyncio_", "ThreadPoolExecutor-")


def status_line(viewers: int, video: int = 0) -> str:
    """``status: viewers=N tasks=N threads=N pooled=N fds=N video=N``: what a leak would make
    grow (tasks of the running loop; Python threads, ``pooled`` of them in pools; this
    process's open descriptors, ``fds=?`` without ``/proc``; ``video``: the H.264 encoders
    alive, one per shared group, 0 once nobody watches video)."""
    try:
        fds: object = len(os.listdir("/proc/self/fd")) - 1  # less listdir's own descriptor
    except OSError:
        fds = "?"
    threads = threading.enumerate()
    pooled = sum(t.name.startswith(POOL_THREADS) for t in threads)
    return (f"status: viewers={viewers} tasks={len(asyncio.all_tasks())} "
            f"threads={len(threads)} pooled={pooled} fds={fds} video={video}")


class HostConsole:
    """Reads commands, asks for consent, and prints what the local user should know.

    :param server: a :class:`~rdesk.host.serve.server.HostServer` (typed loosely to keep
        layers apart).
    :param invites: the host's invite book.
    :param out: where lines go (the terminal).
    """

    def __init__(
        self, server: object, invites: InviteBook, out: Callable[[str], None] = print,
        desk: ConsentDesk | None = None,
    ) -> None:
        self.server = server
        self.invites = invites
        self.out = out
        #: The pending consent requests, shared with the consent socket when there is one.
        self.desk = desk if desk is not None else ConsentDesk(out)
        self.desk.listen(self._announce)
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- consent (HostServer's Consent protocol) -----------------------------------------------

    async def __call__(self, viewer_id: int, name: str, role: str, source: str) -> bool:
        """Whether the local user accepts viewer ``viewer_id`` (see :class:`ConsentDesk`)."""
        return await self.desk(viewer_id, name, role, source)

    async def ask(self, request: Request) -> bool:
        """Whether the local user grants ``request`` (see :meth:`ConsentDesk.ask`)."""
        return await self.desk.ask(request)

    def _announce(self, kind: str, request: Request) -> None:
        if kind == "request":
            n = request.viewer_id
            self.out(f"viewer #{n} {request.name!r} from {request.source} wants "
                     f"{request.wants} [{request.role}]: `accept {n}` or `reject {n}`")

    # --- commands ------------------------------------------------------------------------------

    def invite(self, role: str, minutes: float) -> str:
        """Create an invite and return the line announcing it."""
        code = self.invites.create(role, minutes * 60, time.monotonic())
        return f"invite code [{role}, valid {minutes:g} min, one use]: {code}"

    def handle(self, line: str) -> None:
        """Run one command line; every outcome is reported with :attr:`out`."""
        words = line.split()
        if not words:
            return
        command, args = words[0].lower(), words[1:]
        server = self.server
        try:
            if command == "help":
                self.out(HELP)
            elif command == "viewers":
                for text in server.board.describe():  # type: ignore[attr-defined]
                    self.out(text)
                # Guessing shows here even when nobody got in.
                attempts = getattr(server, "auth_attempts", None)
                if attempts is not None:
                    self.out(f"  {attempts} login attempt(s) since the host started")
            elif command == "status":
                encoders = getattr(server, "video_encoders", None)
                self.out(status_line(len(getattr(server, "viewers", ())),
                                     encoders.groups if encoders is not None else 0))
            elif command == "invite":
                role = args[0] if args else "view"
                minutes = float(args[1]) if len(args) > 1 else 30.0
                self.out(self.invite(role, minutes))
            elif command in ("accept", "reject"):
                if not self.desk.answer(int(args[0]), command == "accept"):
                    self.out(f"no viewer #{args[0]} is waiting for an answer")
            elif command in ("grant", "deny"):
                answer = server.board.answer(LOCAL_USER, int(args[0]), command == "grant")  # type: ignore[attr-defined]
                if answer is None:
                    self.out(f"viewer #{args[0]} has not asked for control")
                else:
                    server.deliver(answer)  # type: ignore[attr-defined]
            elif command == "take":
                server.deliver(server.board.take_local())  # type: ignore[attr-defined]
            elif command == "release":
                server.deliver(server.board.release_local())  # type: ignore[attr-defined]
            elif command == "kick":
                if not server.kick(int(args[0])):  # type: ignore[attr-defined]
                    self.out(f"no viewer #{args[0]}")
            else:
                self.out(f"unknown command {command!r}; type `help`")
        except (IndexError, ValueError) as exc:
            self.out(f"{command}: {exc or 'missing argument'}; type `help`")

    # --- reading the terminal -----------------------------------------------------------------

    def start(self, stream: TextIO = sys.stdin) -> None:
        """Read ``stream`` line by line in a daemon thread, running commands on the loop;
        the terminal can answer consent requests until the stream ends."""
        self._loop = asyncio.get_running_loop()
        self.desk.open("terminal")
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: TextIO) -> None:
        assert self._loop is not None
        for line in stream:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the host is stopping
                self._loop.call_soon_threadsafe(self.handle, line)
        with contextlib.suppress(RuntimeError):
            # Closed, or at end of file from the start (systemd, nohup): the terminal can no
            # longer answer; with no consent socket either, waiting viewers are refused now.
            self._loop.call_soon_threadsafe(self.desk.close, "terminal")
