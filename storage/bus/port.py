"""Event bus port: durable, at-least-once delivery of domain events to named consumers.

Embedded: `MemoryBus` (in-process). Real: `RabbitBus` (RabbitMQ through aio-pika).
Both give every consumer its own queue bound by topic patterns (`order.*`,
`#`), retry a failing handler with back-off, move a message that keeps failing
to the consumer's dead-letter queue, and skip events the consumer already
handled (idempotent on `Event.id`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from storage.ids import new_id


@dataclass(frozen=True)
class Event:
    """`area.thing.happened` with a JSON body; `id` is the idempotency key."""

    type: str
    data: dict[str, Any]
    id: str = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "occurred_at": self.occurred_at.isoformat(),
                "data": self.data,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        body = json.loads(raw)
        return cls(
            id=body["id"],
            type=body["type"],
            occurred_at=datetime.fromisoformat(body["occurred_at"]),
            data=body["data"],
        )


Handler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing handler is retried before its message is dead-lettered."""

    max_attempts: int = 5
    first_delay: float = 1.0
    multiplier: float = 4.0

    def delay(self, attempt: int) -> float:
        """Wait before attempt `attempt + 1` (attempt counts from 1)."""
        return self.first_delay * self.multiplier ** (attempt - 1)


class EventBus(Protocol):
    async def start(self) -> None:
        """Connect now, so a misconfigured broker fails at start-up rather than later."""
        ...

    async def publish(self, event: Event) -> None:
        """Return once the broker has durably accepted the event (publisher confirm)."""
        ...

    async def subscribe(
        self,
        consumer: str,
        patterns: Sequence[str],
        handler: Handler,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Start delivering matching events to `handler` under the durable name `consumer`."""
        ...

    async def dead_letters(self, consumer: str) -> list[Event]:
        """Events that exhausted their retries for `consumer` (for operators and tests)."""
        ...

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` in the bus's event loop whenever it is connected again after
        losing its broker, so a publisher that backed off can resume at once."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
