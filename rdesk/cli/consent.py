"""``rdesk consent``: the desktop user answers a ``--consent ask`` host that has no terminal.

Run on the host's machine by the host's user, it talks to the host's consent socket
(rdesk/host/serve/consentsock.py, whose docstring is the wire)::

    rdesk consent                  # list the viewers waiting to be accepted
    rdesk consent accept 3         # admit viewer #3 (deny 3: refuse it)
    rdesk consent --watch          # ask about each viewer as it arrives: y admits, else refused

Standard library only: it works on a viewer-only install too.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any, TextIO

from rdesk.cli.common import UsageError, add_verb
from rdesk.cli.values import path
from rdesk.common.runtime import CONSENT_MAX_LINE as MAX_LINE
from rdesk.common.runtime import consent_socket_path

__all__ = ["ConsentClient", "add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``consent``."""
    consent = add_verb(
        sub, "consent", help="accept or refuse viewers waiting for a --consent ask host",
        examples=["rdesk consent                 # who is waiting",
                  "rdesk consent accept 3        # admit viewer #3 (deny 3: refuse it)",
                  "rdesk consent --watch         # ask about each viewer as it arrives"],
    )
    consent.add_argument("answer", nargs="?", choices=("accept", "deny"),
                         help="answer viewer N (without it: list who is waiting)")
    consent.add_argument("viewer", nargs="?", type=int, metavar="N", help="the viewer's number")
    consent.add_argument("--watch", action="store_true",
                         help="ask about each waiting viewer, now and as they arrive; answer "
                         "y to admit (anything else refuses); ends with the host or input")
    consent.add_argument("--socket", type=path, default=None, metavar="PATH",
                         help="the host's consent socket (default: "
                         "$XDG_RUNTIME_DIR/rdesk/consent.sock, as the host's)")
    consent.set_defaults(handler=_cmd_consent)


class ConsentClient:
    """One connection to a host's consent socket; requests and replies in order, watch
    events kept for :meth:`next_event`."""

    def __init__(self, where: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(where))
        except OSError as exc:
            self.sock.close()
            raise UsageError(f"no rdesk host answers consent on {where} ({exc.strerror}); is "
                             "it running with --consent ask as this user?") from None
        self._stream = self.sock.makefile("rb")
        self._events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._stream.close()
        self.sock.close()

    def _read(self) -> dict[str, Any] | None:
        line = self._stream.readline(MAX_LINE + 1)
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise UsageError("the host's consent socket sent a line too long")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise UsageError("the host's consent socket sent something unexpected")
        return message

    def call(self, message: dict[str, object]) -> dict[str, Any]:
        """Send ``message``; return the host's reply (raises :class:`UsageError` on an
        ``error`` reply or when the host goes)."""
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = self._read()
            if reply is None:
                raise UsageError("the host closed the consent socket")
            if "event" in reply:
                self._events.append(reply)
                continue
            if "error" in reply:
                raise UsageError(f"the host says: {reply['error']}")
            return reply

    def next_event(self) -> dict[str, Any] | None:
        """The next watch event (blocking); ``None`` when the host closed the socket."""
        if self._events:
            return self._events.pop(0)
        self.sock.settimeout(None)
        return self._read()


def _printable(value: object) -> str:
    """A field from the host (a viewer chose its name) made safe for the terminal."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


def _describe(request: dict[str, Any]) -> str:
    # repr() escapes what the name may hide (controls); the others are plain fields.
    return (f"#{_printable(request.get('viewer_id'))} {str(request.get('name', ''))!r} from "
            f"{_printable(request.get('source', ''))} [{_printable(request.get('role', ''))}] "
            f"wants {_printable(request.get('wants', 'to connect'))}")


def _cmd_consent(args: argparse.Namespace) -> int:
    where = args.socket or consent_socket_path()
    if where is None:
        raise UsageError("no runtime directory ($XDG_RUNTIME_DIR): give --socket PATH")
    if (args.answer is None) != (args.viewer is None):
        raise UsageError("give both an answer and a viewer number: accept N or deny N")
    if args.watch and args.answer is not None:
        raise UsageError("--watch answers as viewers arrive: give no answer with it")
    client = ConsentClient(where)
    try:
        if args.watch:
            return _watch(client, sys.stdin, sys.stdout)
        if args.answer is not None:
            client.call({"op": "answer", "viewer": args.viewer, "accept": args.answer == "accept"})
            print(f"viewer #{args.viewer} {'accepted' if args.answer == 'accept' else 'refused'}")
            return 0
        pending = client.call({"op": "list"})["pending"]
        for request in pending:
            print(_describe(request))
        if not pending:
            print("no viewer is waiting")
        return 0
    finally:
        client.close()


def _watch(client: ConsentClient, answers: TextIO, out: TextIO) -> int:
    """Ask about each request in turn; a request answered elsewhere meanwhile is skipped."""
    client.call({"op": "watch"})
    while True:
        event = client.next_event()
        if event is None:
            print("the host closed the consent socket", file=out, flush=True)
            return 0
        viewer = event.get("viewer_id", event.get("viewer"))
        if not isinstance(viewer, int):
            continue
        if event.get("event") != "request":
            continue  # resolved: it was answered elsewhere, timed out, or left
        print(f"viewer {_describe(event)}; accept? [y/N] ", end="", file=out, flush=True)
        line = answers.readline()
        if not line:
            print("", file=out, flush=True)
            return 0
        accept = line.strip().lower() in ("y", "yes")
        try:
            client.call({"op": "answer", "viewer": viewer, "accept": accept})
        except UsageError as exc:  # answered elsewhere, timed out, or left
            print(f"viewer #{viewer}: {exc}", file=out, flush=True)
        else:
            print(f"viewer #{viewer} {'accepted' if accept else 'refused'}", file=out,
                  flush=True)
