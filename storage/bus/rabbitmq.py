"""RabbitMQ event bus (aio-pika): durable topic exchange, one durable queue per consumer.

Topology for consumer `c` (prefix `streamcart.`):

- exchange `streamcart.events` (topic, durable); events are routed by `Event.type`;
- `streamcart.c`: the consumer's queue, bound once per subscribed pattern;
- `streamcart.c.retry.<n>`: holds a message that failed attempt n for
  `retry.delay(n)` (x-message-ttl), then dead-letters it back to `streamcart.c`;
  one queue per attempt because RabbitMQ only expires messages at a queue's head;
- `streamcart.c.dlq`: messages that failed `retry.max_attempts` times.

The attempt number travels in the `x-streamcart-attempt` header. A message is
acknowledged only after its handler succeeded or it was re-published (with a
publisher confirm) to a retry queue or the DLQ, so a crash at any point means
redelivery, never loss. Queue arguments are fixed when a queue is created:
changing a consumer's `RetryPolicy` needs its retry queues deleted first.
Up to `prefetch` messages of one subscription are handled concurrently, so
handlers must not rely on order (retries reorder events anyway).

Connecting is lazy (first publish, subscribe, `dead_letters` or `ping`);
`start()` connects eagerly so a misconfigured broker fails at start-up. The
connection is robust: aio-pika reconnects and restores channels, queues and
consumers. While it is down `publish` raises at once, and a stalled broker
makes it raise after `publish_timeout`, so the outbox relay keeps the event;
`on_reconnect` tells the relay when the connection is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelNotFoundEntity

from storage.bus.delivery import Dispatcher, Next
from storage.bus.port import Event, Handler, RetryPolicy
from storage.bus.processed import SqlProcessedStore

log = logging.getLogger("streamcart.bus")

ATTEMPT_HEADER = "x-streamcart-attempt"


@dataclass(frozen=True)
class QueueNames:
    """The queues of one consumer (see the module docstring)."""

    main: str

    @property
    def dead(self) -> str:
        return f"{self.main}.dlq"

    def delay(self, attempt: int) -> str:
        return f"{self.main}.retry.{attempt}"


@dataclass(frozen=True)
class _Subscription:
    consumer: str
    queues: QueueNames
    handler: Handler
    retry: RetryPolicy
    channel: AbstractChannel


class RabbitBus:
    def __init__(
        self,
        url: str,
        processed: SqlProcessedStore,
        exchange: str = "streamcart.events",
        queue_prefix: str = "streamcart.",
        *,
        prefetch: int = 32,
        publish_timeout: float = 5.0,
        connect_timeout: float = 3.0,
        reconnect_interval: float = 2.0,
    ) -> None:
        self._url = url
        self._exchange_name = exchange
        self._queue_prefix = queue_prefix
        self._prefetch = prefetch
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_interval = reconnect_interval
        self._dispatcher = Dispatcher(processed)
        self._lock = asyncio.Lock()
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._reconnect_listeners: list[Callable[[], None]] = []

    async def start(self) -> None:
        await self._publisher()

    async def publish(self, event: Event) -> None:
        """Return after the broker confirmed the persistent message; raise otherwise."""
        exchange = await self._publisher()
        message = _message(event.to_json(), event.id, event.type, attempt=1)
        async with asyncio.timeout(self._publish_timeout):
            # mandatory=False: an event nobody subscribes to is not an error.
            await exchange.publish(message, routing_key=event.type, mandatory=False)

    async def subscribe(
        self,
        consumer: str,
        patterns: Sequence[str],
        handler: Handler,
        retry: RetryPolicy | None = None,
    ) -> None:
        retry = retry or RetryPolicy()
        queues = QueueNames(self._queue_prefix + consumer)
        connection = await self._connect()
        # Its own channel: QoS bounds this subscription's unacknowledged messages, and
        # on_return_raises turns a re-publish to a missing queue into an error, not a loss.
        channel = await connection.channel(on_return_raises=True)
        await channel.set_qos(prefetch_count=self._prefetch)
        exchange = await self._declare_exchange(channel)
        queue = await channel.declare_queue(queues.main, durable=True)
        await channel.declare_queue(queues.dead, durable=True)
        for attempt in range(1, retry.max_attempts):
            await channel.declare_queue(
                queues.delay(attempt),
                durable=True,
                arguments={
                    "x-message-ttl": round(retry.delay(attempt) * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queues.main,
                },
            )
        for pattern in patterns:
            await queue.bind(exchange, routing_key=pattern)
        subscription = _Subscription(consumer, queues, handler, retry, channel)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._deliver(subscription, message)

        await queue.consume(on_message)

    async def dead_letters(self, consumer: str) -> list[Event]:
        """Read the DLQ without consuming it: messages are fetched unacknowledged and
        return to the queue when the temporary channel closes."""
        connection = await self._connect()
        events: list[Event] = []
        async with connection.channel() as channel:
            try:
                queue = await channel.declare_queue(
                    QueueNames(self._queue_prefix + consumer).dead, passive=True
                )
            except ChannelNotFoundEntity:
                return []
            while (message := await queue.get(fail=False)) is not None:
                try:
                    events.append(Event.from_json(message.body))
                except (ValueError, KeyError, TypeError):
                    log.warning("undecodable message in %s skipped", queue.name)
        return events

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect_listeners.append(callback)

    async def ping(self) -> None:
        """Raise within `connect_timeout` unless the broker answers a round trip."""
        connection = await self._connect()
        async with asyncio.timeout(self._connect_timeout):
            channel = await connection.channel()
            await channel.close()

    async def close(self) -> None:
        async with self._lock:
            if self._connection is not None:
                await self._connection.close()
            self._connection = self._exchange = None

    async def _connect(self) -> AbstractRobustConnection:
        async with self._lock:
            return await self._open()

    async def _publisher(self) -> AbstractExchange:
        """The exchange on a channel with publisher confirms, declared once."""
        async with self._lock:
            if self._exchange is None:
                channel = await (await self._open()).channel(publisher_confirms=True)
                self._exchange = await self._declare_exchange(channel)
            return self._exchange

    async def _open(self) -> AbstractRobustConnection:
        """Connect once (the caller holds the lock); a failed first connect raises and the
        next call tries again, later outages are healed by the robust connection."""
        if self._connection is None:
            # aiormq's timeout, not asyncio's: cancelling connect_robust would leak its
            # reconnect task.
            self._connection = await aio_pika.connect_robust(
                self._url,
                timeout=self._connect_timeout,
                reconnect_interval=self._reconnect_interval,
                client_properties={"connection_name": "streamcart"},
            )
            # Called once the channels, queues and consumers are restored.
            self._connection.reconnect_callbacks.add(self._reconnected)
        return self._connection

    def _reconnected(self, _connection: AbstractRobustConnection) -> None:
        log.info("reconnected to the broker")
        for listener in self._reconnect_listeners:
            listener()

    async def _declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        return await channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def _deliver(self, sub: _Subscription, message: AbstractIncomingMessage) -> None:
        attempt = int(message.headers.get(ATTEMPT_HEADER) or 1)
        try:
            event = Event.from_json(message.body)
        except (ValueError, KeyError, TypeError):
            log.error("undecodable message for %s: dead-lettered", sub.consumer)
            target: str | None = sub.queues.dead
        else:
            outcome = await self._dispatcher.dispatch(
                sub.consumer, event, sub.handler, attempt, sub.retry
            )
            target = {
                Next.ACK: None,
                Next.RETRY: sub.queues.delay(attempt),
                Next.DEAD: sub.queues.dead,
            }[outcome]
        try:
            if target is not None:
                copy = _message(message.body, message.message_id, message.type, attempt + 1)
                async with asyncio.timeout(self._publish_timeout):
                    await sub.channel.default_exchange.publish(copy, routing_key=target)
            await message.ack()
        except Exception:
            # Not re-routed: hand it back to the broker for another try.
            log.warning("could not re-route a message for %s", sub.consumer, exc_info=True)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)


def _message(
    body: bytes, message_id: str | None, type_: str | None, attempt: int
) -> aio_pika.Message:
    """A persistent JSON message carrying its delivery attempt number."""
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        type=type_,
        headers={ATTEMPT_HEADER: attempt},
    )
