"""The small Redis client against a real redis-server, and against a server that lies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdesk.relay.resp import RedisClient, RedisError


async def test_commands_and_errors_against_a_real_redis(redis_url: str) -> None:
    client = RedisClient(redis_url)
    assert await client.call("PING") == b"PONG"
    assert await client.call("SET", "k", b"\x00\r\nbinary") == b"OK"
    assert await client.call("GET", "k") == b"\x00\r\nbinary"
    assert await client.call("GET", "missing") is None
    assert await client.call("EVAL", "return {1, 'two', {3}}", 0) == [1, b"two", [3]]
    with pytest.raises(RedisError, match=r"^ERR unknown command"):
        await client.call("NOSUCHCOMMAND")
    assert await client.call("PING") == b"PONG"  # an error reply leaves the connection usable
    await client.close()


async def _lying_server(path: Path, reply: bytes) -> asyncio.AbstractServer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(reply)
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(answer, path=str(path))


@pytest.mark.parametrize("reply, reason", [
    (b"$99999999\r\n", "protocol: a 99999999-byte reply is over the limit"),
    (b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "protocol: a reply nested or sized over the limits"),
    (b"?what\r\n", "protocol: unknown reply type b'?'"),
    (b"$5\r\nab", "redis unavailable: "),
])
async def test_a_lying_server_gets_a_one_line_error(tmp_path: Path, reply: bytes,
                                                    reason: str) -> None:
    server = await _lying_server(tmp_path / "s", reply)
    client = RedisClient(f"unix://{tmp_path / 's'}")
    with pytest.raises(RedisError) as info:
        await client.call("PING")
    assert str(info.value).startswith(reason) and "\n" not in str(info.value)
    await client.close()
    server.close()
    await server.wait_closed()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64))
def test_any_reply_parses_or_is_refused(tmp_path: Path, reply: bytes) -> None:
    async def run() -> None:
        path = tmp_path / "h"
        path.unlink(missing_ok=True)
        server = await _lying_server(path, reply)
        client = RedisClient(f"unix://{path}", timeout=2)
        try:
            await client.call("PING")
        except RedisError:
            pass
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(run())


def test_addresses() -> None:
    for bad in ("http://x", "redis://", "redis://h/notadb"):
        with pytest.raises(ValueError):
            RedisClient(bad)
    RedisClient("redis://localhost:6380/2")
