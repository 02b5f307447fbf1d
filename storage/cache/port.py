"""Cache and pub/sub port: short-lived shared state (counters, throttles, presence).

Embedded: `MemoryCache` (one process). Real: `RedisCache` (shared by every
process). Values are bytes; callers encode. Every TTL is in seconds.

Pub/sub is fire-and-forget (at most once): a message reaches only the
subscriptions open when it is published, and a subscriber that falls too far
behind loses messages rather than slowing the publisher. Use the event bus for
anything that must not be lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value`, replacing any previous value and expiry (None: never expires)."""
        ...

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store only when the key is missing; True when this call stored it."""
        ...

    async def replace(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        """Store `value` only while the key holds `expected` (compare and set, one
        atomic step); True when this call stored it. Renews a lease only its holder
        may renew, and hands one over without a second holder slipping in between."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add to an integer counter (a missing key counts as 0).

        `ttl` is set only when this call creates the key, so a fixed window
        (throttles, rate limits) is not extended by later increments.
        """
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds left before the key expires; None when missing or without expiry."""
        ...

    async def publish(self, channel: str, message: bytes) -> int:
        """Send to the open subscriptions on `channel`; returns how many received it."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Listen on `channel`: `async with cache.subscribe(ch) as messages`.

        The subscription is in place once the block is entered: everything
        published from then on is delivered in publish order, so a caller can
        signal "ready" inside the block without racing the publisher. Leaving
        the block (normally, by error or by cancellation) unsubscribes, and the
        iterator then ends.
        """
        ...

    async def ping(self) -> None:
        """Raise when the backend cannot be reached."""
        ...

    async def close(self) -> None: ...
