"""Viewer counts: unique viewers per session, shared by every process through the cache.

A viewer is a signed-in user (however many tabs they open) or a guest socket. Each
viewer has a counter of their open sockets in the session (`viewer:{id}:{who}`); the
session's count (`viewers:{id}`) moves only when a viewer's counter goes 0 -> 1 or
1 -> 0. Both steps are atomic `incr`s, so concurrent joins and leaves on any number of
processes agree without sets or locks. Counters expire a day after they are created,
which bounds memory for sessions nobody cleans up.

Known limit: a process that dies does not decrement for its sockets, so a count can
stay too high until the session's counters expire.

`viewers:count` is emitted at most once a second per session: each process marks the
sessions whose count it changed, and its ticker emits for one only after winning
`viewers-tick:{id}` (set-if-absent, one-second TTL) - the one-second slot is shared by
all processes. A session that lost the race stays marked and is retried next tick, so
the last change is always announced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from storage.cache.port import Cache

COUNTER_TTL = 24 * 3600.0
EMIT_EVERY = 1.0

Emit = Callable[[str, int], Awaitable[None]]


class Presence:
    def __init__(self, cache: Cache, emit_count: Emit) -> None:
        self._cache = cache
        self._emit_count = emit_count
        self._changed: set[str] = set()

    async def join(self, live_session_id: str, viewer: str) -> None:
        if await self._cache.incr(_viewer_key(live_session_id, viewer), 1, COUNTER_TTL) == 1:
            await self._cache.incr(_count_key(live_session_id), 1, COUNTER_TTL)
        self._changed.add(live_session_id)

    async def leave(self, live_session_id: str, viewer: str) -> None:
        if await self._cache.incr(_viewer_key(live_session_id, viewer), -1, COUNTER_TTL) == 0:
            await self._cache.incr(_count_key(live_session_id), -1, COUNTER_TTL)
        self._changed.add(live_session_id)

    async def count(self, live_session_id: str) -> int:
        raw = await self._cache.get(_count_key(live_session_id))
        return max(0, int(raw)) if raw is not None else 0

    async def tick(self) -> None:
        """Announce the sessions whose count changed, each at most once per second."""
        for live_session_id in list(self._changed):
            slot = f"viewers-tick:{live_session_id}"
            if await self._cache.set_if_absent(slot, b"1", ttl=EMIT_EVERY):
                self._changed.discard(live_session_id)
                await self._emit_count(live_session_id, await self.count(live_session_id))


def _viewer_key(live_session_id: str, viewer: str) -> str:
    return f"viewer:{live_session_id}:{viewer}"


def _count_key(live_session_id: str) -> str:
    return f"viewers:{live_session_id}"
