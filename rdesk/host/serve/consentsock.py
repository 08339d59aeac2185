"""The consent socket: ``rdesk consent`` answers ``--consent ask`` where no terminal can.

A host run as a service has no terminal to ask on. With ``--consent ask`` it listens on a Unix
socket in the user's runtime directory (``$XDG_RUNTIME_DIR/rdesk/consent.sock``; the folder is
0700, the socket 0600, and the peer's uid, read with ``SO_PEERCRED``, must be the host's), and
the desktop user's ``rdesk consent`` lists the viewers waiting and accepts or refuses them.

The wire is JSON, one object per line of at most :data:`MAX_LINE` bytes, in both directions::

    → {"op": "list"}                          ← {"pending": [REQUEST, ...]}
    → {"op": "answer", "viewer": 3, "accept": true}   ← {"ok": true} | {"error": "..."}
    → {"op": "watch"}                         ← {"ok": true}, then each pending and new request
                                                as {"event": "request", REQUEST...} and each
                                                end as {"event": "resolved", "viewer": N}

``REQUEST`` is ``{"viewer_id": N, "name": ..., "role": ..., "source": ..., "wants": ...}``
(the name comes from the viewer: the client shows it escaped; ``wants`` is "to connect", or
for a transfer of an admitted viewer "to upload 'a.txt' (3 bytes)"). A malformed or
oversized line gets one ``{"error": ...}`` line and the connection is closed; the host keeps
serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from rdesk.common.runtime import CONSENT_MAX_LINE
from rdesk.host.serve.consent import ConsentDesk, Request

__all__ = ["MAX_CLIENTS", "MAX_LINE", "ConsentSocket", "ConsentSocketError"]

#: Longest line either way, in bytes.
MAX_LINE = CONSENT_MAX_LINE
#: Clients connected at once; more are closed at once.
MAX_CLIENTS = 8


class ConsentSocketError(Exception):
    """The socket cannot be opened; ``str()`` is one line for the user."""


def _peer_uid(sock: socket.socket) -> int | None:
    with contextlib.suppress(OSError, AttributeError):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[1])
    return None


class ConsentSocket:
    """Serves ``desk`` on a Unix socket at ``path`` (see the module docstring)."""

    def __init__(self, desk: ConsentDesk, path: Path) -> None:
        self.desk = desk
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; raises :class:`ConsentSocketError` when the path is unusable or another
        host already answers on it."""
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = folder.stat()
        except OSError as exc:
            raise ConsentSocketError(f"cannot make {folder} for the consent socket: "
                                     f"{exc.strerror}") from None
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise ConsentSocketError(f"{folder} must be yours and private (mode 0700) to hold "
                                     "the consent socket")
        await self._remove_stale()
        old_umask = os.umask(0o177)  # the socket is 0600 from its creation, never wider
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_LINE)
        except OSError as exc:
            raise ConsentSocketError(f"cannot listen on {self.path}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self.desk.open("socket")

    async def _remove_stale(self) -> None:
        """Unlink a socket left by a host that died; refuse one a live host listens on."""
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not stat.S_ISSOCK(self.path.lstat().st_mode):
            raise ConsentSocketError(f"{self.path} exists and is not a socket")
        try:
            _, writer = await asyncio.open_unix_connection(str(self.path))
        except OSError:
            self.path.unlink(missing_ok=True)  # nobody listens: a crashed host's leftover
            return
        writer.close()
        raise ConsentSocketError(f"another rdesk host answers consent on {self.path}; stop it "
                                 "or give this one another --consent-socket")

    async def stop(self) -> None:
        """Stop listening, close every client and remove the socket."""
        self.desk.close("socket")
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            sock = writer.get_extra_info("socket")
            if len(self._clients) > MAX_CLIENTS:
                await _send(writer, {"error": "too many consent clients"})
            elif sock is None or _peer_uid(sock) != os.getuid():
                await _send(writer, {"error": "only the host's user may answer"})
            else:
                await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unlisten = None
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    await _send(writer, {"error": f"line over {MAX_LINE} bytes"})
                    return
                except asyncio.IncompleteReadError:
                    return  # end of input
                try:
                    message = _parse(line)
                except ValueError as exc:
                    await _send(writer, {"error": str(exc)})
                    return
                op = message["op"]
                if op == "list":
                    await _send(writer, {"pending": [r.as_dict() for r in self.desk.pending()]})
                elif op == "answer":
                    viewer, accept = message.get("viewer"), message.get("accept")
                    if not isinstance(viewer, int) or not isinstance(accept, bool):
                        await _send(writer, {"error": "answer needs viewer (int), accept (bool)"})
                        return
                    if self.desk.answer(viewer, accept):
                        await _send(writer, {"ok": True})
                    else:
                        await _send(writer, {"error": f"no viewer #{viewer} is waiting"})
                elif op == "watch" and unlisten is None:
                    await _send(writer, {"ok": True})
                    for request in self.desk.pending():
                        _post(writer, "request", request)
                    unlisten = self.desk.listen(lambda kind, r: _post(writer, kind, r))
                else:
                    await _send(writer, {"error": f"unknown op {op!r}"})
                    return
        finally:
            if unlisten is not None:
                unlisten()


def _parse(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not a JSON line") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ValueError("expected an object with an op")
    return message


def _encode(message: dict[str, object]) -> bytes:
    return json.dumps(message, ensure_ascii=True).encode() + b"\n"


async def _send(writer: asyncio.StreamWriter, message: dict[str, object]) -> None:
    writer.write(_encode(message))
    await writer.drain()


def _post(writer: asyncio.StreamWriter, kind: str, request: Request) -> None:
    """A watch event, without waiting: a client that stops reading is cut off, not waited
    for (its buffer is bounded)."""
    if writer.is_closing():
        return
    event: dict[str, object] = ({"event": "request", **request.as_dict()} if kind == "request"
                                else {"event": "resolved", "viewer": request.viewer_id})
    writer.write(_encode(event))
    transport = writer.transport
    if transport.get_write_buffer_size() > 64 * MAX_LINE:
        transport.abort()
