"""Event bus contract: every adapter routes, retries, dead-letters and de-duplicates alike."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from storage.bus import Event, EventBus, MemoryBus, RabbitBus, RetryPolicy, make_bus
from storage.bus.topics import topic_matches
from tests.backends import AMQP_URL
from tests.bus_support import (
    FAST_RETRY,
    RabbitScope,
    Recorder,
    bus_of_kind,
    eventually,
    rabbit_scope,
    sqlite_processed_store,
)

SETTLE = 0.3  # how long "nothing more arrives" is watched


@pytest.fixture
async def processed(tmp_path):
    store, engine = await sqlite_processed_store(tmp_path)
    yield store
    await engine.dispose()


@pytest.fixture
async def rabbit(processed):
    async with rabbit_scope(processed) as scope:
        yield scope


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request, processed):
    async with bus_of_kind(request.param, processed) as chosen:
        yield chosen


async def settle() -> None:
    await asyncio.sleep(SETTLE)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("order.*", "order.paid", True),
        ("order.*", "order.item.added", False),
        ("order.*", "order", False),
        ("order.#", "order", True),
        ("order.#", "order.item.added", True),
        ("#", "anything.at.all", True),
        ("*.paid", "order.paid", True),
        ("#.paid", "shop.order.paid", True),
        ("#.paid", "order.paid.late", False),
        ("stock.changed", "stock.changed", True),
        ("stock.changed", "stock.changes", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.*.z", "a.z", False),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, expected: bool):
    assert topic_matches(pattern, key) is expected


async def test_delivers_by_pattern_and_skips_the_rest(bus: EventBus):
    orders, everything, stock = Recorder(), Recorder(), Recorder()
    await bus.subscribe("orders", ["order.*"], orders)
    await bus.subscribe("everything", ["#"], everything)
    await bus.subscribe("stock", ["stock.changed"], stock)

    events = [
        Event("order.paid", {"order_id": "o1", "amount": 150_000}),
        Event("stock.changed", {"product_id": "p1", "stock": 3}),
        Event("order.item.added", {"order_id": "o1"}),
        Event("user.created", {"user_id": "u1"}),
    ]
    for event in events:
        await bus.publish(event)

    await eventually(lambda: len(everything.handled) == 4)
    await settle()
    assert sorted(everything.ids()) == sorted(e.id for e in events)
    assert orders.handled == [events[0]]
    assert stock.handled == [events[1]]


async def test_events_published_before_subscribing_are_not_delivered(bus: EventBus):
    early = Event("order.paid", {"n": 1})
    await bus.publish(early)
    handler = Recorder()
    await bus.subscribe("late", ["order.*"], handler)
    later = Event("order.paid", {"n": 2})
    await bus.publish(later)

    await eventually(lambda: len(handler.handled) == 1)
    await settle()
    assert handler.handled == [later]


async def test_each_consumer_gets_its_own_copy(bus: EventBus):
    notifications, analytics = Recorder(), Recorder()
    await bus.subscribe("notifications", ["order.paid"], notifications)
    await bus.subscribe("analytics", ["order.paid"], analytics)
    event = Event("order.paid", {"order_id": "o1"})
    await bus.publish(event)

    await eventually(lambda: notifications.handled and analytics.handled)
    await settle()
    assert notifications.handled == analytics.handled == [event]


async def test_subscriptions_sharing_a_name_compete(bus: EventBus):
    first, second = Recorder(), Recorder()
    await bus.subscribe("workers", ["job.*"], first)
    await bus.subscribe("workers", ["job.*"], second)
    events = [Event("job.queued", {"n": n}) for n in range(20)]
    for event in events:
        await bus.publish(event)

    await eventually(lambda: len(first.handled) + len(second.handled) == 20)
    await settle()
    assert sorted(first.ids() + second.ids()) == sorted(e.id for e in events)


async def test_failing_handler_is_retried_until_it_succeeds(bus: EventBus):
    handler = Recorder(fail_first=2)
    await bus.subscribe("flaky", ["order.paid"], handler, RetryPolicy(4, 0.05, 2))
    event = Event("order.paid", {"order_id": "o1"})
    await bus.publish(event)

    await eventually(lambda: handler.handled)
    await settle()
    assert len(handler.calls) == 3
    assert handler.handled == [event]
    assert await bus.dead_letters("flaky") == []


async def test_always_failing_handler_ends_in_dead_letters(bus: EventBus):
    handler = Recorder(fail_first=1_000)
    await bus.subscribe("broken", ["order.*"], handler, FAST_RETRY)
    event = Event("order.paid", {"order_id": "o1", "items": [{"sku": "A", "qty": 2}]})
    await bus.publish(event)

    await eventually(lambda: bus.dead_letters("broken"))
    await settle()
    assert await bus.dead_letters("broken") == [event]
    assert len(handler.calls) == FAST_RETRY.max_attempts
    assert await bus.dead_letters("broken") == [event], "reading them consumed nothing"
    assert await bus.dead_letters("nobody") == []


async def test_duplicate_publish_is_handled_once(bus: EventBus):
    handler = Recorder()
    await bus.subscribe("once", ["order.paid"], handler)
    event = Event("order.paid", {"order_id": "o1"})
    await asyncio.gather(*(bus.publish(event) for _ in range(3)))
    await bus.publish(event)

    await eventually(lambda: handler.handled)
    await settle()
    assert handler.handled == [event]


async def test_ping(bus: EventBus):
    await bus.ping()


async def test_rabbit_ping_fails_fast_when_the_broker_is_unreachable(processed):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bus = RabbitBus(f"amqp://guest:guest@127.0.0.1:{port}/", processed)
    started = time.monotonic()
    with pytest.raises((ConnectionError, OSError, TimeoutError)):
        await bus.ping()
    assert time.monotonic() - started < 4
    await bus.close()


async def test_rabbit_consumer_gets_what_was_published_while_it_was_down(rabbit: RabbitScope):
    consumer = rabbit.bus()
    await consumer.subscribe("billing", ["order.*"], Recorder())
    await consumer.close()

    events = [Event("order.paid", {"n": n}) for n in range(5)]
    publisher = rabbit.bus()
    for event in events:
        await publisher.publish(event)
    await publisher.close()

    handler = Recorder()
    restarted = rabbit.bus()
    await restarted.subscribe("billing", ["order.*"], handler)
    await eventually(lambda: len(handler.handled) == 5)
    await settle()
    assert sorted(handler.ids()) == sorted(e.id for e in events)


async def test_make_bus_picks_the_adapter(processed):
    assert isinstance(make_bus("", processed), MemoryBus)
    assert isinstance(make_bus(AMQP_URL, processed), RabbitBus)
