"""One load at a time per key: callers that miss a cache together share the first
caller's load instead of each sending the same query (thousands of viewers tapping
Buy in the same millisecond must not become thousands of identical reads)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[T]] = {}

    async def run(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """`load()`'s result, or that of the same key's load already in flight. A
        caller that is cancelled does not cancel the load the others wait for."""
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(load())
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(running)
