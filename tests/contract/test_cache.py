"""Cache port contract: every adapter must pass the same tests.

Redis tests run under a unique key prefix each and delete their keys afterwards,
so they never touch other data in the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as redis

from storage.cache import Cache, MemoryCache, RedisCache, make_cache
from tests.backends import REDIS_URL, fresh_redis_prefix

SHORT = 0.2  # a TTL short enough to wait out, long enough to observe


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cache(request) -> AsyncIterator[Cache]:
    async with AsyncExitStack() as stack:
        adapter: Cache
        if request.param == "memory":
            adapter = MemoryCache()
        else:
            prefix = await stack.enter_async_context(fresh_redis_prefix())
            adapter = RedisCache(REDIS_URL, prefix=prefix)
        stack.push_async_callback(adapter.close)
        yield adapter


async def test_get_set_and_missing(cache: Cache) -> None:
    assert await cache.get("k") is None
    await cache.set("k", b"one")
    assert await cache.get("k") == b"one"
    await cache.set("k", b"two")
    assert await cache.get("k") == b"two"
    assert await cache.ttl("k") is None
    assert await cache.ttl("missing") is None


async def test_ttl_expires_the_key(cache: Cache) -> None:
    await cache.set("k", b"v", ttl=SHORT)
    assert await cache.get("k") == b"v"
    left = await cache.ttl("k")
    assert left is not None and 0 < left <= SHORT
    await asyncio.sleep(SHORT + 0.1)
    assert await cache.get("k") is None
    assert await cache.ttl("k") is None


async def test_set_replaces_the_expiry(cache: Cache) -> None:
    await cache.set("k", b"v", ttl=SHORT)
    await cache.set("k", b"w")
    assert await cache.ttl("k") is None
    await cache.set("k", b"x", ttl=30)
    left = await cache.ttl("k")
    assert left is not None and 29 < left <= 30


async def test_set_if_absent(cache: Cache) -> None:
    assert await cache.set_if_absent("k", b"first", ttl=SHORT) is True
    assert await cache.set_if_absent("k", b"second") is False
    assert await cache.get("k") == b"first"
    await asyncio.sleep(SHORT + 0.1)
    assert await cache.set_if_absent("k", b"third") is True
    assert await cache.get("k") == b"third"
    assert await cache.ttl("k") is None


async def test_replace_stores_only_over_the_expected_value(cache: Cache) -> None:
    assert await cache.replace("k", b"any", b"new") is False
    assert await cache.get("k") is None
    await cache.set("k", b"mine", ttl=SHORT)
    assert await cache.replace("k", b"theirs", b"new") is False
    assert await cache.get("k") == b"mine"
    assert await cache.replace("k", b"mine", b"renewed", ttl=30) is True
    assert await cache.get("k") == b"renewed"
    left = await cache.ttl("k")
    assert left is not None and 29 < left <= 30
    assert await cache.replace("k", b"renewed", b"forever") is True
    assert await cache.ttl("k") is None


async def test_replace_does_not_revive_an_expired_value(cache: Cache) -> None:
    await cache.set("k", b"mine", ttl=SHORT)
    await asyncio.sleep(SHORT + 0.1)
    assert await cache.replace("k", b"mine", b"renewed") is False
    assert await cache.get("k") is None


async def test_delete(cache: Cache) -> None:
    await cache.set("k", b"v")
    await cache.set("other", b"v")
    await cache.delete("k")
    assert await cache.get("k") is None
    assert await cache.get("other") == b"v"
    await cache.delete("never-set")


async def test_incr_creates_then_adds(cache: Cache) -> None:
    assert await cache.incr("n") == 1
    assert await cache.incr("n") == 2
    assert await cache.incr("n", 5) == 7
    assert await cache.incr("n", -3) == 4
    assert await cache.get("n") == b"4"
    assert await cache.ttl("n") is None


async def test_incr_continues_a_stored_number(cache: Cache) -> None:
    await cache.set("n", b"41")
    assert await cache.incr("n", ttl=SHORT) == 42
    assert await cache.ttl("n") is None


async def test_incr_sets_the_ttl_only_on_creation(cache: Cache) -> None:
    window = 2 * SHORT
    assert await cache.incr("n", ttl=window) == 1
    first = await cache.ttl("n")
    assert first is not None and window - 0.1 < first <= window
    await asyncio.sleep(SHORT)
    assert await cache.incr("n", ttl=window) == 2
    later = await cache.ttl("n")
    assert later is not None and later <= first - SHORT + 0.05
    await asyncio.sleep(later + 0.1)
    assert await cache.get("n") is None
    assert await cache.incr("n", ttl=window) == 1


async def test_concurrent_incr_loses_nothing(cache: Cache) -> None:
    results = await asyncio.gather(*(cache.incr("n", ttl=30) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await cache.get("n") == b"50"


async def test_subscriber_receives_messages_in_order(cache: Cache) -> None:
    async with asyncio.timeout(5), cache.subscribe("ch") as messages:
        sent = [f"m{i}".encode() for i in range(5)]
        for message in sent:
            assert await cache.publish("ch", message) == 1
        assert [await anext(messages) for _ in sent] == sent


async def test_only_the_subscribed_channel_is_delivered(cache: Cache) -> None:
    async with asyncio.timeout(5), cache.subscribe("ch") as messages:
        assert await cache.publish("elsewhere", b"no") == 0
        await cache.publish("ch", b"yes")
        assert await anext(messages) == b"yes"


async def test_subscribers_in_tasks_all_receive(cache: Cache) -> None:
    ready = [asyncio.Event(), asyncio.Event()]

    async def listen(ready: asyncio.Event) -> list[bytes]:
        received = []
        async with cache.subscribe("ch") as messages:
            ready.set()
            async for message in messages:
                received.append(message)
                if len(received) == 3:
                    return received
        raise AssertionError("the subscription ended early")

    async with asyncio.timeout(5):
        tasks = [asyncio.create_task(listen(event)) for event in ready]
        for event in ready:
            await event.wait()
        for message in (b"a", b"b", b"c"):
            assert await cache.publish("ch", message) == 2
        assert await asyncio.gather(*tasks) == [[b"a", b"b", b"c"]] * 2


async def test_leaving_the_subscription_unsubscribes(cache: Cache) -> None:
    async with asyncio.timeout(5):
        async with cache.subscribe("ch") as messages:
            await cache.publish("ch", b"seen")
            assert await anext(messages) == b"seen"
        assert await cache.publish("ch", b"after") == 0
        assert [message async for message in messages] == []


async def test_cancelled_subscriber_unsubscribes(cache: Cache) -> None:
    ready = asyncio.Event()

    async def listen() -> None:
        async with cache.subscribe("ch") as messages:
            ready.set()
            async for _ in messages:
                pass

    task = asyncio.create_task(listen())
    async with asyncio.timeout(5):
        await ready.wait()
        assert await cache.publish("ch", b"x") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await cache.publish("ch", b"y") == 0


async def test_ping(cache: Cache) -> None:
    await cache.ping()


async def test_prefixes_keep_redis_users_apart(redis_prefix: str) -> None:
    other_prefix = redis_prefix + "other:"
    mine = RedisCache(REDIS_URL, prefix=redis_prefix)
    theirs = RedisCache(REDIS_URL, prefix=other_prefix)
    raw = redis.from_url(REDIS_URL)
    try:
        await mine.set("k", b"mine")
        await mine.incr("n")
        assert await theirs.get("k") is None
        assert await theirs.incr("n") == 1
        assert await raw.get(f"{redis_prefix}k") == b"mine"
        async with asyncio.timeout(5), theirs.subscribe("ch"):
            assert await mine.publish("ch", b"x") == 0
            assert await theirs.publish("ch", b"x") == 1
    finally:
        await mine.close()
        await theirs.close()
        await raw.aclose()


async def test_redis_ping_fails_fast_when_unreachable() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", prefix="unused:")
    started = time.monotonic()
    try:
        with pytest.raises(redis.ConnectionError):
            await cache.ping()
    finally:
        await cache.close()
    assert time.monotonic() - started < 3


async def test_make_cache_picks_the_adapter() -> None:
    memory = make_cache("")
    redis_cache = make_cache("redis://127.0.0.1:1/0")
    assert isinstance(memory, MemoryCache)
    assert isinstance(redis_cache, RedisCache)
    await memory.close()
    await redis_cache.close()


async def test_memory_slow_subscriber_keeps_the_newest_messages() -> None:
    cache = MemoryCache(queue_size=3)
    async with asyncio.timeout(5), cache.subscribe("ch") as messages:
        for i in range(5):
            await cache.publish("ch", f"m{i}".encode())
        assert [await anext(messages) for _ in range(3)] == [b"m2", b"m3", b"m4"]


async def test_memory_sweep_drops_expired_keys_nobody_reads() -> None:
    cache = MemoryCache(sweep_interval=0)
    for i in range(10):
        await cache.set(f"k{i}", b"v", ttl=0.01)
    await asyncio.sleep(0.05)
    await cache.set("live", b"v")
    assert list(cache._entries) == ["live"]
