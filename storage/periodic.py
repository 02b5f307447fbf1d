"""A background job that runs every few seconds for the life of the app.

A failing round is logged and the job tries again at the next interval: a database
or broker hiccup must not stop sweepers and announcers for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("streamcart.periodic")


class Periodic:
    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self._interval = interval
        self._work = work
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._work()
            except Exception:
                log.exception("%s failed; retrying at the next interval", self.name)
            await asyncio.sleep(self._interval)
