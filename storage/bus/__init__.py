"""Event bus: durable, at-least-once, idempotent delivery of domain events to named consumers.

`make_bus` picks the adapter: RabbitMQ when an AMQP URL is configured, the
in-process bus otherwise. Both share routing (`topics`), idempotency and retry
decisions (`delivery`), so they pass the same contract tests.
"""

from storage.bus.memory import MemoryBus
from storage.bus.port import Event, EventBus, Handler, RetryPolicy
from storage.bus.processed import SqlProcessedStore
from storage.bus.rabbitmq import RabbitBus


def make_bus(url: str, processed: SqlProcessedStore) -> EventBus:
    """`amqp://...` -> RabbitBus; empty -> MemoryBus (embedded, single process)."""
    return RabbitBus(url, processed) if url else MemoryBus(processed)


__all__ = [
    "Event",
    "EventBus",
    "Handler",
    "MemoryBus",
    "RabbitBus",
    "RetryPolicy",
    "SqlProcessedStore",
    "make_bus",
]
