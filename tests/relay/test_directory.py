"""The in-memory directory, the enrolment tokens and the rate limiter (pure logic, fake clock)."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.relay.directory import Directory, DirectoryRefusal, DirectoryUnavailable, MemoryDirectory
from rdesk.relay.ratelimit import RateLimiter
from rdesk.relay.redisdir import RedisDirectory
from rdesk.relay.tokens import TOKENS_FILENAME, TokenError, TokenStore


@pytest.fixture(params=["memory", "redis"])
async def directory(request: pytest.FixtureRequest) -> AsyncIterator[Directory]:
    """Each directory test runs on the in-memory directory and on a real Redis."""
    if request.param == "memory":
        yield MemoryDirectory()
        return
    shared = RedisDirectory(request.getfixturevalue("redis_url"))
    yield shared
    await shared.close()


async def test_register_lookup_expire(directory: Directory) -> None:
    assert await directory.register("A", b"k", "relay-1", "c1", 0.0, 60.0) is None
    entry = await directory.lookup("A", 59.9)
    assert entry is not None and entry.connection == "c1" and entry.instance == "relay-1"
    assert await directory.lookup("A", 60.0) is None
    assert await directory.lookup("B", 0.0) is None


async def test_heartbeat_renews_only_for_the_holding_connection(directory: Directory) -> None:
    await directory.register("A", b"k", "i", "c1", 0.0, 60.0)
    assert await directory.heartbeat("A", "c1", 50.0, 60.0)
    assert not await directory.heartbeat("A", "c2", 50.0, 60.0)
    assert await directory.lookup("A", 109.0) is not None
    assert not await directory.heartbeat("A", "c1", 110.0, 60.0)  # expired: gone


async def test_same_key_replaces_another_key_is_refused(directory: Directory) -> None:
    await directory.register("A", b"k", "i", "c1", 0.0, 60.0)
    with pytest.raises(DirectoryRefusal, match="registered with another key"):
        await directory.register("A", b"other", "i", "c2", 1.0, 60.0)
    old = await directory.register("A", b"k", "i", "c2", 1.0, 60.0)
    assert old is not None and old.connection == "c1"
    assert not await directory.unregister("A", "c1")  # the replaced one cannot remove it
    assert await directory.unregister("A", "c2")
    assert await directory.lookup("A", 2.0) is None
    # once expired, another key may take the ID
    await directory.register("A", b"k", "i", "c3", 0.0, 10.0)
    assert await directory.register("A", b"other", "i", "c4", 10.0, 10.0) is None


async def test_a_shared_bucket_gives_its_burst_then_its_rate(directory: Directory) -> None:
    taken = [await directory.take("id:A", 0.5, 3, 100.0) for _ in range(5)]
    assert taken == [True, True, True, False, False]
    assert await directory.take("id:B", 0.5, 3, 100.0)  # another bucket is not affected
    assert not await directory.take("id:A", 0.5, 3, 101.9)  # 0.95 token: not yet
    assert await directory.take("id:A", 0.5, 3, 102.1)
    assert not await directory.take("id:A", 0.5, 3, 102.1)
    assert not await directory.take("id:A", 0.5, 3, 50.0)  # a clock behind refills nothing
    assert [await directory.take("id:A", 0.5, 3, 1e6) for _ in range(4)] == [
        True, True, True, False]  # refilled to the burst, not beyond


async def test_two_redis_clients_share_one_bucket(redis_url: str) -> None:
    one, two = RedisDirectory(redis_url), RedisDirectory(redis_url)
    try:
        taken = [await (one if i % 2 else two).take("id:A", 0.001, 4, 7.0) for i in range(8)]
        assert taken == [True] * 4 + [False] * 4
        ttl = await one.redis.call("PTTL", "rdesk-relay:bucket:id:A")
        assert isinstance(ttl, int) and 0 < ttl <= (4 / 0.001 + 1) * 1000
    finally:
        await one.close()
        await two.close()


async def test_places_are_capped_freed_and_expire(directory: Directory) -> None:
    taken = [await directory.take_place("waiting:A", f"v{i}", 3, 100.0, 10.0) for i in range(4)]
    assert taken == [True, True, True, False]
    assert await directory.take_place("waiting:B", "v0", 3, 100.0, 10.0)  # another set
    await directory.free_place("waiting:A", "v1")
    await directory.free_place("waiting:A", "nobody")  # freeing what is not held: nothing
    assert await directory.take_place("waiting:A", "v4", 3, 101.0, 10.0)
    assert not await directory.take_place("waiting:A", "v5", 3, 109.9, 10.0)
    # v0 and v2 (taken at 100) lapse at 110, never freed: as a killed instance's would
    assert await directory.take_place("waiting:A", "v5", 3, 110.0, 10.0)
    assert await directory.take_place("waiting:A", "v6", 3, 110.0, 10.0)
    assert not await directory.take_place("waiting:A", "v7", 3, 110.0, 10.0)  # v4, v5, v6


async def test_two_redis_clients_share_one_set_of_places(redis_url: str) -> None:
    one, two = RedisDirectory(redis_url), RedisDirectory(redis_url)
    try:
        taken = [await (one if i % 2 else two).take_place("waiting:A", f"v{i}", 4, 7.0, 0.5)
                 for i in range(6)]
        assert taken == [True] * 4 + [False] * 2
        ttl = await one.redis.call("PTTL", "rdesk-relay:places:waiting:A")
        assert isinstance(ttl, int) and 0 < ttl <= 500  # the key lapses with its members
        await two.free_place("waiting:A", "v1")  # freed by another client than took it
        assert await one.take_place("waiting:A", "v6", 4, 7.1, 0.5)
    finally:
        await one.close()
        await two.close()


async def test_max_hosts_bounds_the_directory() -> None:
    directory = MemoryDirectory(max_hosts=2)
    await directory.register("A", b"a", "i", "1", 0.0, 10.0)
    await directory.register("B", b"b", "i", "2", 0.0, 20.0)
    with pytest.raises(DirectoryRefusal, match="no room"):
        await directory.register("C", b"c", "i", "3", 5.0, 10.0)
    await directory.register("C", b"c", "i", "3", 10.0, 10.0)  # A expired and was swept
    assert len(directory) == 2


async def test_redis_entries_carry_a_redis_ttl_and_survive_a_new_client(redis_url: str) -> None:
    first = RedisDirectory(redis_url)
    # now + ttl in the far future for the stored expiry, but a short Redis TTL backstop
    await first.register("A", b"k", "relay-1", "c1", 0.0, 0.2)
    second = RedisDirectory(redis_url)  # another instance sees the same entry
    entry = await second.lookup("A", 0.1)
    assert entry is not None and (entry.instance, entry.connection) == ("relay-1", "c1")
    ttl = await second.redis.call("PTTL", "rdesk-relay:host:A")
    assert isinstance(ttl, int) and 0 < ttl <= 200
    await first.close()
    await second.close()


async def test_an_unreachable_redis_is_not_ready_and_raises_one_line(tmp_path: Path) -> None:
    directory = RedisDirectory(f"unix://{tmp_path}/nothing.sock")
    assert not await directory.ready()
    with pytest.raises(DirectoryUnavailable,
                       match=r"^the directory is unavailable: redis unavailable: "):
        await directory.lookup("A", 0.0)
    await directory.close()


def test_tokens_are_stored_as_hashes_and_checked(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "relay")
    token, info = store.create("office  pc")
    assert token.startswith("rdt_") and len(token) == 4 + 26
    assert info.label == "office pc"
    text = (tmp_path / "relay" / TOKENS_FILENAME).read_text()
    assert token not in text and info.digest in text
    assert stat.S_IMODE((tmp_path / "relay" / TOKENS_FILENAME).stat().st_mode) == 0o600
    assert store.check(token) == info
    assert store.check(token + "x") is None
    assert store.check(None) is None and store.check("") is None
    # another process (the CLI) revokes it: the running store sees the change
    TokenStore(tmp_path / "relay").revoke(info.id)
    assert store.check(token) is None
    assert store.list() == []


def test_token_errors_are_one_line(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.create("a")
    store.create("a")
    with pytest.raises(TokenError, match="several tokens are labelled 'a'"):
        store.revoke("a")
    with pytest.raises(TokenError, match="no enrolment token 'zz'"):
        store.revoke("zz")
    (tmp_path / TOKENS_FILENAME).write_text(json.dumps({"tokens": [{"id": 1}]}))
    with pytest.raises(TokenError, match="is not an enrolment token file"):
        store.check("rdt_x")


def test_rate_limiter_burst_then_rate() -> None:
    limiter = RateLimiter(rate=1.0, burst=3)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", 0.0)  # per key
    assert limiter.retry_after("a", 0.0) == pytest.approx(1.0)
    assert not limiter.allow("a", 0.5)
    assert limiter.allow("a", 1.6)
    limiter.sweep(100.0)
    assert len(limiter) == 0


@settings(max_examples=100)
@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.floats(0, 5)), max_size=200))
def test_rate_limiter_never_allows_more_than_burst_plus_rate_times_time(
    attempts: list[tuple[str, float]],
) -> None:
    limiter = RateLimiter(rate=2.0, burst=4)
    bounded = RateLimiter(rate=2.0, burst=4, max_keys=3)
    now = 0.0
    allowed = dict.fromkeys("abcdefgh", 0)
    for key, gap in attempts:
        now += gap
        allowed[key] += limiter.allow(key, now)
        bounded.allow(key, now)
        assert len(bounded) <= 3
    for count in allowed.values():
        assert count <= 4 + 2.0 * now
