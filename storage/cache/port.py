"""Cache and pub/sub port: short-lived shared state (counters, throttles, presence).

Embedded: `MemoryCache` (one process). Real: `RedisCache` (shared by every
process). Values are bytes; callers encode. Every TTL is in seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store only when the key is missing; True when this call stored it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add to an integer counter; `ttl` is set when this call creates the key."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds left before the key expires; None when missing or without expiry."""
        ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """Messages published on `channel` after the iterator starts."""
        ...

    async def ping(self) -> None:
        """Raise when the backend cannot be reached."""
        ...

    async def close(self) -> None: ...
