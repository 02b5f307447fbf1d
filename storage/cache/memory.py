"""In-process cache and pub/sub: the embedded default for a single process.

Every operation runs on the event loop without awaiting in between, so each
one is atomic without locks. Expiry uses the monotonic clock (wall-clock jumps
neither expire nor revive keys). Expired keys are dropped when read, and a
sweep at most every `sweep_interval` seconds, run by writes, drops the ones
nobody reads again, so memory stays proportional to the live keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class MemoryCache:
    """`Cache` held in a dict; pub/sub through one bounded queue per subscription.

    A subscription that is not read fast enough keeps its newest `queue_size`
    messages: when its queue is full the oldest message is dropped, so a slow
    reader never blocks publishers (the same trade-off as Redis, which
    disconnects a subscriber whose output buffer overflows).
    """

    def __init__(self, queue_size: int = 1000, sweep_interval: float = 30.0) -> None:
        self._entries: dict[str, _Entry] = {}
        self._channels: dict[str, set[asyncio.Queue[bytes | None]]] = {}
        self._queue_size = queue_size
        self._sweep_interval = sweep_interval
        self._next_sweep = time.monotonic() + sweep_interval

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expired(time.monotonic()):
            del self._entries[key]
            return None
        return entry

    def _store(self, key: str, value: bytes, ttl: float | None) -> None:
        now = time.monotonic()
        self._entries[key] = _Entry(value, None if ttl is None else now + ttl)
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            for stale in [k for k, e in self._entries.items() if e.expired(now)]:
                del self._entries[stale]

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        return None if entry is None else entry.value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._store(key, value, ttl)

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._store(key, value, ttl)
        return True

    async def replace(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        entry = self._live(key)
        if entry is None or entry.value != expected:
            return False
        self._store(key, value, ttl)
        return True

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        entry = self._live(key)
        if entry is None:
            self._store(key, str(amount).encode(), ttl)
            return amount
        # Like Redis INCRBY: the existing expiry is kept, never extended.
        value = int(entry.value) + amount
        entry.value = str(value).encode()
        return value

    async def ttl(self, key: str) -> float | None:
        entry = self._live(key)
        if entry is None or entry.expires_at is None:
            return None
        return entry.expires_at - time.monotonic()

    async def publish(self, channel: str, message: bytes) -> int:
        queues = self._channels.get(channel, set())
        for queue in queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)
        return len(queues)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(self._queue_size)
        self._channels.setdefault(channel, set()).add(queue)
        try:
            yield _drain(queue)
        finally:
            queues = self._channels[channel]
            queues.discard(queue)
            if not queues:
                del self._channels[channel]
            # Discard what was not read and wake a pending reader with the end marker.
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)

    async def ping(self) -> None:
        """Always reachable: it lives in this process."""

    async def close(self) -> None:
        self._entries.clear()


async def _drain(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    """Yield queued messages until the `None` put there when the subscription closes."""
    while (message := await queue.get()) is not None:
        yield message
