"""Redis cache and pub/sub: shared by every process of a deployment.

Every key and channel is namespaced by `prefix`, so several apps (or test runs)
can share one Redis database without seeing each other. Connections are opened
lazily from one pool; short socket timeouts make `ping()` (and `/readyz`) fail
fast instead of hanging when Redis is down.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from redis.asyncio.client import PubSub

# INCRBY and the creation-time expiry in one atomic step: a separate EXPIRE
# could be lost if the process died in between, leaving a counter that never
# resets (a locked-out account, say).
_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and ARGV[2] ~= '' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

# Compare and set: GET and SET in one atomic step. ARGV[3] is the expiry in ms ('' for
# none, which SET without PX gives).
_REPLACE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
if ARGV[3] == '' then
    redis.call('SET', KEYS[1], ARGV[2])
else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""


def _ms(ttl: float) -> int:
    """Redis takes whole milliseconds; round up so a tiny TTL is not rejected as 0."""
    return max(1, math.ceil(ttl * 1000))


# redis-py's default pool fails at once ("Too many connections") past its limit of
# commands in flight; a bounded pool that waits keeps a burst of requests (every
# authenticated one checks the token deny list) from turning into 500s.
MAX_CONNECTIONS = 100
POOL_WAIT_SECONDS = 5.0


def pooled_client(url: str) -> redis.Redis:
    """A client on such a bounded pool, with short socket timeouts (every Redis adapter
    of ours connects this way)."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        socket_connect_timeout=2,
        socket_timeout=5,
    )
    return redis.Redis(connection_pool=pool)


class RedisCache:
    """`Cache` on Redis; pub/sub messages are delivered at most once (Redis PUBLISH)."""

    def __init__(self, url: str, prefix: str = "streamcart:") -> None:
        self._prefix = prefix
        self._client = pooled_client(url)
        self._incr = self._client.register_script(_INCR)
        self._replace = self._client.register_script(_REPLACE)

    async def get(self, key: str) -> bytes | None:
        return await self._client.get(self._prefix + key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = None if ttl is None else _ms(ttl)
        await self._client.set(self._prefix + key, value, px=px)

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        px = None if ttl is None else _ms(ttl)
        return bool(await self._client.set(self._prefix + key, value, px=px, nx=True))

    async def replace(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        px = "" if ttl is None else _ms(ttl)
        return bool(await self._replace(keys=[self._prefix + key], args=[expected, value, px]))

    async def delete(self, key: str) -> None:
        await self._client.delete(self._prefix + key)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        px = "" if ttl is None else _ms(ttl)
        return int(await self._incr(keys=[self._prefix + key], args=[amount, px]))

    async def ttl(self, key: str) -> float | None:
        ms = await self._client.pttl(self._prefix + key)
        # PTTL answers -2 for a missing key and -1 for a key without expiry.
        return None if ms < 0 else ms / 1000

    async def publish(self, channel: str, message: bytes) -> int:
        return int(await self._client.publish(self._prefix + channel, message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._prefix + channel)
            # SUBSCRIBE is only sent above; its confirmation proves Redis has
            # registered us, so a publish made after this point cannot be missed.
            reply = None
            while reply is None or reply["type"] != "subscribe":
                reply = await pubsub.get_message(timeout=None)
            yield _messages(pubsub)
        finally:
            # Drops the dedicated connection, which ends the subscription server-side.
            await pubsub.aclose()

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose(close_connection_pool=True)


async def _messages(pubsub: PubSub) -> AsyncIterator[bytes]:
    """Payloads of published messages; ends once the subscription is closed."""
    async for message in pubsub.listen():
        if message["type"] == "message":
            yield message["data"]
