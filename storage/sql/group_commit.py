"""Group commit: many callers' small writes in one transaction, each in a savepoint.

When many winners of one race write at once (a flash sale's first second), each of
their transactions waits for the same hot rows (the sale, the variant's stock) held by
the one before until it commits, so they go one commit at a time and the last waits
for all. Here a caller's work joins a queue; one task runs the queued works in one
transaction, each inside a SAVEPOINT so that one failing work rolls back alone, and
commits once; works that arrive meanwhile form the next batch. The hot rows are locked
once per batch, and the commit's round trip and fsync are shared.

Any transaction kind serves: `begin()` opens one and gives what the works write with
(a SQLAlchemy session, an asyncpg connection), `savepoint(it)` opens a savepoint in it.
A work must only write through what it is given (it may run again, with its batch,
when `retry` retries the transaction). Its result, or its exception, reaches its
caller once the batch has committed (or failed as a whole: then every caller gets the
error); `committed()` runs after each commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C")
Retry = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]

MAX_BATCH = 64


async def _once(attempt: Callable[[], Awaitable[Any]]) -> Any:
    return await attempt()


def _nothing() -> None:
    return None


@dataclass
class _Queued:
    work: Callable[[Any], Awaitable[Any]]
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(Generic[C]):
    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[C]],
        savepoint: Callable[[C], AbstractAsyncContextManager[Any]],
        *,
        retry: Retry = _once,
        committed: Callable[[], None] = _nothing,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._begin = begin
        self._savepoint = savepoint
        self._retry = retry
        self._committed = committed
        self._max_batch = max_batch
        self._queue: list[_Queued] = []
        self._writer: asyncio.Task | None = None

    async def run(self, work: Callable[[C], Awaitable[T]]) -> T:
        """`work`'s result once its batch committed; its own exception if it raised."""
        queued = _Queued(work)
        self._queue.append(queued)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        return await asyncio.shield(queued.done)

    async def _drain(self) -> None:
        batch: list[_Queued] = []
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: len(batch)]
                try:
                    outcomes = await self._retry(lambda batch=batch: self._transaction(batch))
                except Exception as error:  # the transaction as a whole failed
                    outcomes = [(False, error)] * len(batch)
                else:
                    self._committed()
                for queued, (ok, value) in zip(batch, outcomes, strict=True):
                    if queued.done.done():
                        continue
                    if ok:
                        queued.done.set_result(value)
                    else:
                        queued.done.set_exception(value)
        finally:  # cancelled (the app stops): nobody may wait for ever
            for queued in [*batch, *self._queue]:
                queued.done.cancel()
            self._queue.clear()

    async def _transaction(self, batch: list[_Queued]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        async with self._begin() as writer:
            for queued in batch:
                try:
                    async with self._savepoint(writer):
                        outcomes.append((True, await queued.work(writer)))
                except Exception as error:
                    outcomes.append((False, error))
        return outcomes
