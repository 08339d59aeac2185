"""Reaching a relay's splice port: the raw lane's first step, the same for viewer and host.

:func:`dial_splice_port` opens plain TCP to the splice port, sends the preamble with the
peer's one-time ticket (:mod:`rdesk.protocol.rawlane`) and reads the relay's status byte —
and nothing more, so what follows on the socket is the end-to-end TLS session's alone.
"""

from __future__ import annotations

import asyncio
import socket

from rdesk.protocol.rawlane import GO, MAX_REASON, REFUSED, check_status, preamble

__all__ = ["dial_splice_port"]


async def dial_splice_port(name: str, port: int, ticket: bytes) -> socket.socket:
    """A non-blocking TCP socket to ``name:port`` that presented ``ticket`` and was answered
    ``GO``. Raises ``OSError`` (unreachable) or :class:`RawLaneError` (refused, with the
    relay's one line, or not a relay's answer); bound it with a timeout."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"{name} has no address")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, preamble(ticket))
        status = await loop.sock_recv(sock, 1)
        if status != GO:
            line = await loop.sock_recv(sock, MAX_REASON + 1) if status == REFUSED else b""
            check_status(status, line)
    except BaseException:
        sock.close()
        raise
    return sock
