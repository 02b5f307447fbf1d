"""In-process event bus: the embedded adapter, with the same routing and retry rules as RabbitMQ.

Each consumer name owns one queue (created by its first `subscribe`, so events
published earlier never reach it, like a fresh broker queue); every
subscription adds a worker task to that queue, so subscriptions sharing a name
compete for messages. Events travel as their JSON bytes, so a handler gets its
own copy and an event that RabbitMQ could not carry fails here too. Nothing
survives the process: durability is the outbox's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from storage.bus.delivery import Dispatcher, Next
from storage.bus.port import Event, Handler, RetryPolicy
from storage.bus.processed import SqlProcessedStore
from storage.bus.topics import topic_matches


@dataclass
class _Queue:
    patterns: set[str] = field(default_factory=set)
    messages: asyncio.Queue[tuple[bytes, int]] = field(default_factory=asyncio.Queue)
    dead: list[Event] = field(default_factory=list)


class MemoryBus:
    def __init__(self, processed: SqlProcessedStore) -> None:
        self._dispatcher = Dispatcher(processed)
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Nothing to connect; present so both adapters start the same way."""

    async def publish(self, event: Event) -> None:
        """Enqueue a copy for every consumer with a matching pattern, then return."""
        body = event.to_json()
        for queue in self._queues.values():
            if any(topic_matches(pattern, event.type) for pattern in queue.patterns):
                queue.messages.put_nowait((body, 1))

    async def subscribe(
        self,
        consumer: str,
        patterns: Sequence[str],
        handler: Handler,
        retry: RetryPolicy | None = None,
    ) -> None:
        queue = self._queues.setdefault(consumer, _Queue())
        queue.patterns.update(patterns)
        self._spawn(self._work(consumer, queue, handler, retry or RetryPolicy()))

    async def dead_letters(self, consumer: str) -> list[Event]:
        queue = self._queues.get(consumer)
        return list(queue.dead) if queue else []

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Never disconnected, so never called."""

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Stop the workers and pending redeliveries; queued events are dropped."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _work(
        self, consumer: str, queue: _Queue, handler: Handler, retry: RetryPolicy
    ) -> None:
        while True:
            body, attempt = await queue.messages.get()
            event = Event.from_json(body)
            match await self._dispatcher.dispatch(consumer, event, handler, attempt, retry):
                case Next.RETRY:
                    # A timer, not a sleep in the worker: other messages keep flowing.
                    self._spawn(self._redeliver(queue, body, attempt + 1, retry.delay(attempt)))
                case Next.DEAD:
                    queue.dead.append(event)

    @staticmethod
    async def _redeliver(queue: _Queue, body: bytes, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        queue.messages.put_nowait((body, attempt))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
