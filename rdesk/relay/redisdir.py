"""A :class:`~rdesk.relay.directory.Directory` in Redis, shared by relay instances.

Each registered ID is one key, ``<prefix>host:<ID>``, holding a JSON entry (key as base64,
instance, connection id, expiry) and a Redis TTL of the same length, so a crashed instance's
entries disappear on their own. Every change is one Lua script, atomic in Redis, so two
instances registering the same ID at once cannot both win, and the rules of the interface hold
across instances: the same key replaces, another key is refused while the entry lives, and only
the holding connection renews or removes it. ``now`` must be the same clock on every instance
(wall time): it is compared with the stored expiry; Redis's TTL is the backstop.

:meth:`forward` and :meth:`requests` are Redis pub/sub on ``<prefix>instance:<name>``;
:meth:`take`'s token buckets are hashes ``<prefix>bucket:<name>`` (one Lua script a take),
expiring once they would be full again. :meth:`take_place`'s sets are sorted sets
``<prefix>places:<name>``, each member scored by its expiry: one Lua script drops the expired
members, counts the rest against the cap and adds the new one, and the key itself expires
with its last member, so places an instance never freed (it was killed) lapse on their own.

A Redis that cannot be reached (or answers nonsense) makes :meth:`ready` false (``/readyz``
answers 503), and the other methods raise
:class:`~rdesk.relay.directory.DirectoryUnavailable`, which the relay turns into a refusal of
that one registration or viewer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
from collections.abc import AsyncIterator

from rdesk.relay.directory import DirectoryRefusal, DirectoryUnavailable, Entry
from rdesk.relay.resp import RedisClient, RedisError, Reply

__all__ = ["RedisDirectory"]

log = logging.getLogger(__name__)

# KEYS[1] the ID's key; ARGV: spki (base64), new entry (JSON), TTL (ms), now.
_REGISTER = """
local current = redis.call('GET', KEYS[1])
if current then
  local entry = cjson.decode(current)
  if tonumber(entry.expires) > tonumber(ARGV[4]) then
    if entry.spki ~= ARGV[1] then return {'conflict', ''} end
  else
    current = false
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return {'ok', current or ''}
"""

# KEYS[1] the ID's key; ARGV: connection, now, new expiry, TTL (ms).
_HEARTBEAT = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local entry = cjson.decode(current)
if entry.connection ~= ARGV[1] or tonumber(entry.expires) <= tonumber(ARGV[2]) then
  return 0
end
entry.expires = ARGV[3]
redis.call('SET', KEYS[1], cjson.encode(entry), 'PX', ARGV[4])
return 1
"""

# KEYS[1] the ID's key; ARGV: connection.
_UNREGISTER = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if cjson.decode(current).connection ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


# KEYS[1] the bucket's key; ARGV: rate (per s), burst, now, TTL (ms). A token bucket as a
# hash {tokens, at}; a ``now`` behind the stored one (clock skew) refills nothing.
_TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at',
           string.format('%.6f', at))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return taken
"""

# KEYS[1] the set's key; ARGV: member, cap, now, expiry, TTL (ms). Expired members go first;
# then the cap is checked and the member added, all in one step.
_TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
"""


def _ttl_ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


def _entry_json(host_id: str, spki: bytes, instance: str, connection: str,
                expires: float) -> str:
    # Expiry as a string: Lua numbers are doubles, and a string survives cjson unchanged.
    return json.dumps({"id": host_id, "spki": base64.b64encode(spki).decode(),
                       "instance": instance, "connection": connection,
                       "expires": repr(float(expires))})


def _parse(raw: bytes) -> Entry:
    try:
        obj = json.loads(raw)
        return Entry(str(obj["id"]), base64.b64decode(obj["spki"], validate=True),
                     str(obj["instance"]), str(obj["connection"]), float(obj["expires"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise DirectoryUnavailable("the directory holds an entry that is not one") from None


class RedisDirectory:
    """The directory in the Redis at ``url``; keys start with ``prefix``."""

    def __init__(self, url: str, *, prefix: str = "rdesk-relay:") -> None:
        self.url = url
        self.redis = RedisClient(url)
        self.prefix = prefix

    def _key(self, host_id: str) -> str:
        return f"{self.prefix}host:{host_id}"

    async def _call(self, *args: bytes | str | int | float) -> Reply:
        try:
            return await self.redis.call(*args)
        except RedisError as exc:
            raise DirectoryUnavailable(f"the directory is unavailable: {exc}") from None

    async def register(
        self, host_id: str, spki: bytes, instance: str, connection: str, now: float, ttl: float
    ) -> Entry | None:
        entry = _entry_json(host_id, spki, instance, connection, now + ttl)
        reply = await self._call("EVAL", _REGISTER, 1, self._key(host_id),
                                      base64.b64encode(spki), entry, _ttl_ms(ttl), repr(now))
        if not isinstance(reply, list) or len(reply) != 2:
            raise DirectoryUnavailable("the directory is unavailable: odd reply to register")
        status, old = reply
        if status == b"conflict":
            raise DirectoryRefusal("the ID is registered with another key")
        return _parse(old) if isinstance(old, bytes) and old else None

    async def heartbeat(self, host_id: str, connection: str, now: float, ttl: float) -> bool:
        reply = await self._call("EVAL", _HEARTBEAT, 1, self._key(host_id), connection,
                                      repr(now), repr(now + ttl), _ttl_ms(ttl))
        return reply == 1

    async def lookup(self, host_id: str, now: float) -> Entry | None:
        raw = await self._call("GET", self._key(host_id))
        if not isinstance(raw, bytes):
            return None
        entry = _parse(raw)
        return entry if now < entry.expires else None

    async def unregister(self, host_id: str, connection: str) -> bool:
        reply = await self._call("EVAL", _UNREGISTER, 1, self._key(host_id), connection)
        return reply == 1

    async def ready(self) -> bool:
        try:
            return await self.redis.call("PING") == b"PONG"
        except RedisError:
            return False

    async def forward(self, instance: str, request: bytes) -> bool:
        receivers = await self._call("PUBLISH", f"{self.prefix}instance:{instance}", request)
        return isinstance(receivers, int) and receivers > 0

    async def take(self, bucket: str, rate: float, burst: int, now: float) -> bool:
        # Kept until it would be full again: then it carries nothing.
        ttl = _ttl_ms(burst / rate + 1.0)
        reply = await self._call("EVAL", _TAKE, 1, f"{self.prefix}bucket:{bucket}",
                                 repr(float(rate)), burst, repr(float(now)), ttl)
        return reply == 1

    async def take_place(self, name: str, member: str, cap: int, now: float,
                         ttl: float) -> bool:
        reply = await self._call("EVAL", _TAKE_PLACE, 1, f"{self.prefix}places:{name}",
                                 member, cap, repr(float(now)), repr(float(now + ttl)),
                                 _ttl_ms(ttl))
        return reply == 1

    async def free_place(self, name: str, member: str) -> None:
        await self._call("ZREM", f"{self.prefix}places:{name}", member)

    async def requests(self, instance: str) -> AsyncIterator[bytes]:
        # A connection of its own (a subscribed one can do nothing else), reopened when lost;
        # what is published meanwhile is lost, and its viewer times out.
        while True:
            listener = RedisClient(self.url)
            try:
                async for request in listener.listen(f"{self.prefix}instance:{instance}"):
                    yield request
            except RedisError as exc:
                log.warning("relay directory: %s; listening again in 1 s", exc)
                await asyncio.sleep(1.0)
            finally:
                await listener.close()

    async def close(self) -> None:
        await self.redis.close()
