"""Transactional outbox: events commit with their state, reach the bus once, survive outages.

Runs on SQLite and PostgreSQL (the `sql_engine` fixture) with the in-process
bus and with RabbitMQ; the outage tests put a TCP proxy between the relay's
bus and the real broker and cut or stall it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from storage.bus import Event, EventBus, SqlProcessedStore
from storage.outbox import OutboxRelay, OutboxRow, add_event
from storage.sql import session_factory
from storage.sql.driver_pool import DriverPool
from tests.backends import AMQP_URL
from tests.bus_support import Recorder, bus_of_kind, eventually, rabbit_scope
from tests.tcp_proxy import TcpProxy

FAST = {"poll_interval": 0.05, "max_backoff": 0.2}


class FlakyBus:
    """Wraps a bus: fails every publish while `down`, and counts publishes per event id."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner
        self.down = False
        self.published: Counter[str] = Counter()

    async def publish(self, event: Event) -> None:
        if self.down:
            raise ConnectionError("amqp://streamcart:s3cret@broker:5672/ is unreachable")
        await self.inner.publish(event)
        self.published[event.id] += 1

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.fixture
def sessions(sql_engine):
    return session_factory(sql_engine)


@pytest.fixture
def processed(sessions):
    return SqlProcessedStore(sessions)


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request, processed):
    async with bus_of_kind(request.param, processed) as chosen:
        yield chosen


@pytest.fixture
async def relays(sessions):
    """Build relays for a test and stop them all at the end, whatever happened."""
    started: list[OutboxRelay] = []

    async def start(bus: EventBus, **options: float) -> OutboxRelay:
        relay = OutboxRelay(sessions, bus, **{**FAST, **options})
        await relay.start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        await relay.stop()


async def commit_events(sessions, count: int, type_: str = "order.paid") -> list[str]:
    """Commit `count` events, each in its own transaction as request handlers would."""
    ids = []
    for n in range(count):
        async with sessions() as session:
            ids.append(add_event(session, type_, {"n": n}).id)
            await session.commit()
    return ids


def drained(relay: OutboxRelay) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await relay.pending() == 0

    return check


async def outbox_rows(sessions) -> list[OutboxRow]:
    async with sessions() as session:
        return list(await session.scalars(select(OutboxRow).order_by(OutboxRow.occurred_at)))


async def test_processed_store_records_each_event_once(processed):
    await records_each_event_once(processed)


@pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)
async def test_processed_store_on_asyncpg_records_each_event_once(sessions, sql_url):
    """The PostgreSQL fast path: plain statements on asyncpg's own pool, and a record
    the SQLAlchemy path reads back (both share the table)."""
    pool = DriverPool(sql_url, size=2)
    try:
        await records_each_event_once(SqlProcessedStore(sessions, pool))
        assert await SqlProcessedStore(sessions).seen("billing", "e1")
    finally:
        await pool.close()


async def records_each_event_once(processed: SqlProcessedStore) -> None:
    assert not await processed.seen("billing", "e1")
    await asyncio.gather(*(processed.mark("billing", "e1") for _ in range(3)))
    await processed.mark("billing", "e1")
    assert await processed.seen("billing", "e1")
    assert not await processed.seen("analytics", "e1")


async def test_committed_event_is_delivered_once_and_marked_published(sessions, bus, relays):
    handler = Recorder()
    await bus.subscribe("billing", ["order.*"], handler)
    # A long poll: delivery within seconds proves the commit itself woke the relay.
    relay = await relays(bus, poll_interval=30)
    await asyncio.sleep(0.1)  # let its first (empty) poll pass

    async with sessions() as session:
        event = add_event(session, "order.paid", {"order_id": "o1", "amount": 250_000})
        await session.commit()

    await eventually(lambda: handler.handled)
    await eventually(drained(relay))
    await asyncio.sleep(0.2)
    assert handler.handled == [event]
    [row] = await outbox_rows(sessions)
    assert row.published_at is not None
    assert row.attempts == 0


async def test_rolled_back_event_is_never_published(sessions, bus):
    handler = Recorder()
    await bus.subscribe("billing", ["order.*"], handler)
    relay = OutboxRelay(sessions, bus)

    async with sessions() as session:
        add_event(session, "order.paid", {"order_id": "o1"})
        await session.flush()
        await session.rollback()

    assert await relay.run_once() == 0
    assert await relay.pending() == 0
    assert await outbox_rows(sessions) == []
    await asyncio.sleep(0.2)
    assert handler.handled == []


async def test_relay_keeps_events_while_the_bus_fails_and_publishes_after(sessions, bus, relays):
    handler = Recorder()
    await bus.subscribe("billing", ["order.*"], handler)
    flaky = FlakyBus(bus)
    flaky.down = True
    relay = await relays(flaky)
    ids = await commit_events(sessions, 3)

    async def retried_twice() -> bool:
        return (await outbox_rows(sessions))[0].attempts >= 2

    await eventually(retried_twice)
    first, *rest = await outbox_rows(sessions)
    assert await relay.pending() == 3
    assert "ConnectionError" in first.last_error
    assert "s3cret" not in first.last_error
    assert [row.attempts for row in rest] == [0, 0], "the batch stops at the failing event"
    assert handler.handled == []

    flaky.down = False
    await eventually(lambda: len(handler.handled) == 3)
    await eventually(drained(relay))
    assert sorted(handler.ids()) == sorted(ids)


async def test_two_relays_on_one_database_lose_nothing(sessions, bus, relays, sql_engine):
    handler = Recorder()
    await bus.subscribe("billing", ["order.*"], handler)
    counting = FlakyBus(bus)
    first = await relays(counting, batch_size=5)
    await relays(counting, batch_size=5)

    batches = await asyncio.gather(*(commit_events(sessions, 10) for _ in range(4)))
    ids = [event_id for batch in batches for event_id in batch]

    await eventually(lambda: len(handler.handled) == 40, within=10)
    await eventually(drained(first))
    await asyncio.sleep(0.2)
    assert sorted(handler.ids()) == sorted(ids), "each event handled exactly once"
    if sql_engine.dialect.name == "postgresql":
        # FOR UPDATE SKIP LOCKED: the replicas never publish the same row twice.
        assert set(counting.published.values()) == {1}


@pytest.mark.parametrize("failure", ["cut", "stall"])
async def test_relay_rides_out_a_real_broker_outage(sessions, processed, relays, failure):
    """Relay -> proxy -> RabbitMQ; the consumer is connected to the broker directly."""
    proxy = TcpProxy()
    port = await proxy.start()
    try:
        async with rabbit_scope(processed) as rabbit:
            handler = Recorder()
            await rabbit.bus().subscribe("billing", ["order.*"], handler)
            proxied = rabbit.bus(
                AMQP_URL.replace("127.0.0.1:5672", f"127.0.0.1:{port}"),
                publish_timeout=0.5,
                reconnect_interval=0.1,
            )
            await proxied.start()
            relay = await relays(proxied)

            getattr(proxy, failure)()
            started = time.monotonic()
            with pytest.raises(Exception):  # noqa: B017 - whatever the client raises
                await proxied.publish(Event("probe.sent", {}))
            assert time.monotonic() - started < 1.5, "publish must fail within its timeout"

            ids = await commit_events(sessions, 20)

            async def retried() -> bool:
                return (await outbox_rows(sessions))[0].attempts >= 2

            await eventually(retried)
            assert await relay.pending() == 20
            assert handler.handled == []

            proxy.restore()
            await eventually(lambda: len(handler.handled) == 20, within=15)
            await eventually(drained(relay))
            await asyncio.sleep(0.3)
            assert sorted(handler.ids()) == sorted(ids), "all arrive, each handled once"
            await relay.stop()
    finally:
        await proxy.close()
