"""A small Redis client: one connection, one command at a time, RESP2 with size limits.

Just what :class:`~rdesk.relay.redisdir.RedisDirectory` needs (``PING``, ``GET``, ``EVAL``,
``PUBLISH``, ``SUBSCRIBE``),
so the relay carries no extra dependency. Addresses are ``redis://HOST[:PORT][/DB]`` or
``unix:///path/to/socket``. Replies are bounded (a bulk string of at most 1 MiB, arrays of at
most 1024 items, nested at most 4 deep): a broken or hostile server gets :class:`RedisError`,
not the relay's memory. A lost connection is reopened by the next command.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator

__all__ = ["RedisClient", "RedisError", "Reply"]

Reply = bytes | int | None | list["Reply"]

_MAX_BULK = 1024 * 1024
_MAX_ITEMS = 1024
_MAX_DEPTH = 4
_MAX_LINE = 64 * 1024


class RedisError(Exception):
    """Redis answered with an error, broke the protocol, or could not be reached (one line)."""


def _encode(args: tuple[bytes | str | int | float, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class RedisClient:
    """Commands to one Redis server; safe to share between tasks (calls take turns)."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "unix":
            self._unix: str | None = parts.path
            self._host, self._port, self._db = "", 0, 0
        elif parts.scheme == "redis" and parts.hostname:
            self._unix = None
            self._host, self._port = parts.hostname, parts.port or 6379
            db = parts.path.strip("/")
            if db and not db.isdigit():
                raise ValueError(f"not a Redis database number: {db!r}")
            self._db = int(db or 0)
        else:
            raise ValueError(f"a Redis address is redis://HOST[:PORT][/DB] or unix:///PATH, "
                             f"not {url[:80]!r}")
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        if self._unix is not None:
            self._reader, self._writer = await asyncio.open_unix_connection(
                self._unix, limit=_MAX_LINE)
        else:
            self._reader, self._writer = await asyncio.open_connection(
                self._host, self._port, limit=_MAX_LINE)
        if self._db:
            await self._roundtrip(("SELECT", self._db))

    async def call(self, *args: bytes | str | int | float) -> Reply:
        """Send one command and return its reply; :class:`RedisError` on any failure."""
        async with self._lock:
            try:
                if self._writer is None:
                    await asyncio.wait_for(self._open(), self.timeout)
                return await asyncio.wait_for(self._roundtrip(args), self.timeout)
            except RedisError as exc:
                if exc.args and str(exc).startswith("protocol:"):
                    await self._drop()
                raise
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError) as exc:
                await self._drop()
                raise RedisError(f"redis unavailable: {exc or type(exc).__name__}") from None

    async def listen(self, channel: str) -> AsyncIterator[bytes]:
        """Subscribe to ``channel`` and yield each message published on it.

        The client's connection is then subscribed, so use a client for nothing else. Raises
        :class:`RedisError` when the connection is lost (the caller reconnects).
        """
        async with self._lock:
            try:
                if self._writer is None:
                    await asyncio.wait_for(self._open(), self.timeout)
                await asyncio.wait_for(self._roundtrip(("SUBSCRIBE", channel)), self.timeout)
                while True:
                    push = await self._read(0)  # no timeout: messages come when they come
                    if (isinstance(push, list) and len(push) == 3 and push[0] == b"message"
                            and isinstance(push[2], bytes)):
                        yield push[2]
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError) as exc:
                await self._drop()
                raise RedisError(f"redis unavailable: {exc or type(exc).__name__}") from None

    async def _roundtrip(self, args: tuple[bytes | str | int | float, ...]) -> Reply:
        assert self._writer is not None
        self._writer.write(_encode(args))
        await self._writer.drain()
        return await self._read(0)

    async def _read(self, depth: int) -> Reply:
        assert self._reader is not None
        line = await self._reader.readuntil(b"\r\n")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body
        if kind == b"-":
            raise RedisError(body.decode("utf-8", "replace")[:200])
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            if size > _MAX_BULK:
                raise RedisError(f"protocol: a {size}-byte reply is over the limit")
            data = await self._reader.readexactly(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(body)
            if count < 0:
                return None
            if count > _MAX_ITEMS or depth >= _MAX_DEPTH:
                raise RedisError("protocol: a reply nested or sized over the limits")
            return [await self._read(depth + 1) for _ in range(count)]
        raise RedisError(f"protocol: unknown reply type {kind!r}")

    async def _drop(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
