"""Helpers shared by the bus contract tests and the outbox tests.

`RabbitScope` gives a test its own exchange and queue prefix on the shared
broker and deletes everything it declared afterwards, so tests can run
concurrently and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aio_pika
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.bus import (
    Event,
    EventBus,
    Handler,
    MemoryBus,
    RabbitBus,
    RetryPolicy,
    SqlProcessedStore,
)
from storage.bus.rabbitmq import QueueNames
from storage.sql import make_engine, session_factory
from storage.sql.migrate import upgrade
from tests.backends import AMQP_URL, require

FAST_RETRY = RetryPolicy(max_attempts=3, first_delay=0.05, multiplier=2)


async def eventually(check: Callable[[], object], within: float = 5.0) -> None:
    """Wait until `check()` (or the awaitable it returns) is truthy, failing after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


async def sqlite_processed_store(directory: Path) -> tuple[SqlProcessedStore, AsyncEngine]:
    """A processed-events store on a fresh SQLite file; returns it and its engine."""
    engine = make_engine(f"sqlite:///{directory / 'processed.sqlite3'}")
    await upgrade(engine)
    return SqlProcessedStore(session_factory(engine)), engine


class Recorder:
    """A handler that records what it handled and can fail its first calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[Event] = []
        self.handled: list[Event] = []
        self._fail_first = fail_first

    async def __call__(self, event: Event) -> None:
        self.calls.append(event)
        if len(self.calls) <= self._fail_first:
            raise RuntimeError("handler failure for the test")
        self.handled.append(event)

    def ids(self) -> list[str]:
        return [event.id for event in self.handled]


class RabbitScope:
    """Unique exchange and queue prefix for one test; `cleanup()` deletes what was declared."""

    def __init__(self, processed: SqlProcessedStore) -> None:
        tag = uuid.uuid4().hex[:10]
        self.processed = processed
        self.exchange = f"test.{tag}.events"
        self.prefix = f"test.{tag}."
        self._buses: list[RabbitBus] = []
        self._consumers: dict[str, int] = {}

    def bus(self, url: str = AMQP_URL, **options: float) -> RabbitBus:
        scope = self

        class TrackedBus(RabbitBus):
            async def subscribe(
                self,
                consumer: str,
                patterns: Sequence[str],
                handler: Handler,
                retry: RetryPolicy | None = None,
            ) -> None:
                attempts = (retry or RetryPolicy()).max_attempts
                scope._consumers[consumer] = max(attempts, scope._consumers.get(consumer, 0))
                await super().subscribe(consumer, patterns, handler, retry)

        bus = TrackedBus(url, self.processed, self.exchange, self.prefix, **options)
        self._buses.append(bus)
        return bus

    async def cleanup(self) -> None:
        for bus in self._buses:
            await bus.close()
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        async with connection, connection.channel() as channel:
            for consumer, attempts in self._consumers.items():
                names = QueueNames(self.prefix + consumer)
                doomed = [names.main, names.dead, *map(names.delay, range(1, attempts))]
                for name in doomed:
                    await channel.queue_delete(name)
            await channel.exchange_delete(self.exchange)


@contextlib.asynccontextmanager
async def rabbit_scope(processed: SqlProcessedStore) -> AsyncIterator[RabbitScope]:
    """A `RabbitScope` on the test broker (skipped, or failed under CI, when it is down)."""
    require(AMQP_URL, "RabbitMQ")
    scope = RabbitScope(processed)
    try:
        yield scope
    finally:
        await scope.cleanup()


@contextlib.asynccontextmanager
async def bus_of_kind(kind: str, processed: SqlProcessedStore) -> AsyncIterator[EventBus]:
    """A started bus of either adapter ("memory" or "rabbitmq"), closed afterwards."""
    if kind == "memory":
        memory = MemoryBus(processed)
        try:
            yield memory
        finally:
            await memory.close()
    else:
        async with rabbit_scope(processed) as scope:
            yield scope.bus()
