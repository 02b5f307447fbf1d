"""A background job that runs every few seconds for the life of the app.

A failing round is logged and the job tries again at the next interval: a database
or broker hiccup must not stop sweepers and announcers for good.

Stopping lets the round in progress finish (at most STOP_WAIT seconds) rather than
cancelling it half-way: a round cut inside a transaction could leave its connection
holding a lock (SQLite's whole-database one), and a cancellation that lands inside a
Redis call can come out as a connection error that the round catches and carries on
from. Only a round that outlasts STOP_WAIT is cancelled, again until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("streamcart.periodic")
STOP_WAIT = 3.0


class Periodic:
    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self._interval = interval
        self._work = work
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        await asyncio.wait({self._task}, timeout=STOP_WAIT)
        while not self._task.done():
            log.warning("%s did not finish its round; cancelling it", self.name)
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._work()
            except Exception:
                log.exception("%s failed; retrying at the next interval", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
