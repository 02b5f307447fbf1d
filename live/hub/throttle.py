"""At most one push per key per interval: the first at once, the rest of the window
coalesced into one at its end carrying the newest data.

A flash sale can change one unit's stock hundreds of times a second; each change
pushed to every viewer would be that many messages times the audience, and each
push looks up the sessions showing the product. Viewers need the newest figure
promptly, not every intermediate one, so pushes are keyed (by variant) and thinned
here. A window's last push can be lost if the process stops inside it: pushes are
consequences of committed state, and clients catch up from the REST API or the next
`session:join` snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("streamcart.hub")

MAX_REMEMBERED = 4096  # keys whose last push time is kept; older ones are forgotten


class Throttle:
    def __init__(self, push: Callable[[Any], Awaitable[None]], interval: float) -> None:
        self._push = push
        self._interval = interval
        self._last: dict[str, float] = {}
        self._pending: dict[str, Any] = {}
        self._flushes: set[asyncio.Task[None]] = set()

    async def offer(self, key: str, data: Any) -> None:
        """Push `data` now if `key` was not pushed within the interval, else later."""
        if key in self._pending:
            self._pending[key] = data  # a push at the window's end is already due
            return
        now = asyncio.get_running_loop().time()
        last = self._last.get(key)
        if last is None or now - last >= self._interval:
            self._remember(key, now)
            await self._push(data)
            return
        self._pending[key] = data
        task = asyncio.create_task(self._flush(key, last + self._interval - now))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def close(self) -> None:
        """Drop what is pending (see the module docstring)."""
        for task in list(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)
        self._pending.clear()

    async def _flush(self, key: str, delay: float) -> None:
        await asyncio.sleep(delay)
        data = self._pending.pop(key)
        self._remember(key, asyncio.get_running_loop().time())
        try:
            await self._push(data)
        except Exception:  # a failed push must not take the others with it
            log.exception("a coalesced push failed")

    def _remember(self, key: str, now: float) -> None:
        self._last[key] = now
        if len(self._last) > MAX_REMEMBERED:
            horizon = now - self._interval
            self._last = {k: t for k, t in self._last.items() if t >= horizon}
