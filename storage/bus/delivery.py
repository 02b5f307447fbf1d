"""One delivery of one event to one consumer: idempotency and the retry decision.

Both adapters share this so a handler sees the same semantics in-process and on
RabbitMQ; the adapters only move messages (re-enqueue, delay queue, dead-letter
queue) according to the returned `Next`.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from storage.bus.port import Event, Handler, RetryPolicy
from storage.bus.processed import SqlProcessedStore

log = logging.getLogger("streamcart.bus")


class Next(Enum):
    """What the transport does with a message once `Dispatcher.dispatch` returns."""

    ACK = "ack"  # handled now or before: drop it
    RETRY = "retry"  # failed: deliver again as attempt + 1 after retry.delay(attempt)
    DEAD = "dead"  # failed retry.max_attempts times: move it to the dead letters


class Dispatcher:
    """Runs a handler at most once per (consumer, event id) and classifies failures.

    The processed store is checked before the handler and written after it
    succeeds, so a redelivered or duplicated event is acknowledged without
    running the handler again. Copies of the same event that arrive while the
    first is still being handled (a broker redelivery, a duplicate publish,
    competing subscriptions in this process) wait for it instead of racing it.
    Copies handled at the same instant by *another process* can still both
    run: handlers with external effects should be idempotent themselves.
    """

    def __init__(self, processed: SqlProcessedStore) -> None:
        self._processed = processed
        self._in_flight: dict[tuple[str, str], asyncio.Event] = {}

    async def dispatch(
        self, consumer: str, event: Event, handler: Handler, attempt: int, retry: RetryPolicy
    ) -> Next:
        key = (consumer, event.id)
        while (busy := self._in_flight.get(key)) is not None:
            await busy.wait()
        done = self._in_flight[key] = asyncio.Event()
        try:
            if not await self._processed.seen(consumer, event.id):
                await handler(event)
                await self._processed.mark(consumer, event.id)
            return Next.ACK
        except Exception:
            # Handler bugs and transient store/network errors alike: retry, then park it.
            if attempt < retry.max_attempts:
                log.warning(
                    "%s failed on %s %s (attempt %d/%d), retrying in %.1fs",
                    consumer,
                    event.type,
                    event.id,
                    attempt,
                    retry.max_attempts,
                    retry.delay(attempt),
                    exc_info=True,
                )
                return Next.RETRY
            log.error(
                "%s gave up on %s %s after %d attempts: dead-lettered",
                consumer,
                event.type,
                event.id,
                attempt,
                exc_info=True,
            )
            return Next.DEAD
        finally:
            del self._in_flight[key]
            done.set()
