"""A real `streamcart serve` under a steady checkout load while a backend fails: RabbitMQ
stopped for 30 s, PostgreSQL restarted, the app SIGKILLed, Redis stopped for 10 s.

During each fault every answer is 2xx, a 409 sold out or a documented 503 (a problem
with Retry-After), never a 500 and never a hang; afterwards no unit of stock is lost or
oversold, every committed `order.*` event reaches an outside consumer of the bus, and a
Sepay transfer posted during the fault and again afterwards is applied once. Recovery
(backend back to the first successful checkout and event delivery) is printed; the
figures are in docs/deployment.md. The backends are private processes on other ports
(tests/fault_support.py): the shared ones are never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.bus_support import eventually
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.fault_support import (
    Answer,
    CheckoutLoad,
    EventAudit,
    PrivatePostgres,
    PrivateRabbit,
    PrivateRedis,
    acceptable,
    tally,
)
from tests.server_process import ServerApi, ServerProcess, clean_env
from tests.test_orders import SEPAY_KEY, transfer, webhook

BIG_STOCK, HOT_STOCK, HOT_QUANTITY = 10_000, 5, 2
WARM_UP = 1.0  # seconds of load before the fault
AFTER_RECOVERY = 1.0  # and after the first successful checkout
RECOVER_WITHIN = 30.0  # backend back -> first successful checkout
DELIVER_WITHIN = 45.0  # and then every committed event delivered
RESUME_WITHIN = 10.0  # broker back -> first event delivered
RABBIT_OUTAGE, REDIS_OUTAGE, POSTGRES_OUTAGE = 30.0, 10.0, 3.0
BUYERS = 3
pytestmark = pytest.mark.timeout(300)  # the RabbitMQ scenario alone waits 30 s + its start


@dataclass
class Private:
    postgres: PrivatePostgres
    redis: PrivateRedis
    rabbit: PrivateRabbit


@pytest.fixture(scope="module")
def private() -> Iterator[Private]:
    """The three backends, started once for the module and side by side (RabbitMQ
    takes seconds); the directory is traversable by their system users."""
    base = Path(tempfile.mkdtemp(prefix="streamcart-faults-"))
    base.chmod(0o711)
    started = []
    try:
        backends = Private(PrivatePostgres(base), PrivateRedis(base), PrivateRabbit(base))
        started = [backends.postgres, backends.redis, backends.rabbit]
        with ThreadPoolExecutor(len(started)) as pool:
            for future in [pool.submit(backend.start) for backend in started]:
                future.result()
        yield backends
    finally:
        with ThreadPoolExecutor(max(1, len(started))) as pool:
            list(pool.map(lambda backend: backend.close(), started))
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Stack:
    """One app on the private backends, seeded: a shop with a big and a hot product."""

    api: ServerApi
    http: aiohttp.ClientSession
    env: dict[str, str]
    logs: Path
    database: str
    audit: EventAudit
    tokens: list[str]
    lines: list[dict]
    stock: dict[str, int]  # variant id -> initial stock

    @property
    def server(self) -> ServerProcess:
        return self.api.server

    async def restart(self) -> None:
        """A new process on the same port and data dir (the load keeps its URL)."""
        log = self.logs / f"app-{time.monotonic_ns()}.log"
        self.api.server = ServerProcess(self.env, log, port=self.server.port)
        await self.server.wait_ready(self.http)


@pytest.fixture
async def stack(private: Private, tmp_path: Path) -> AsyncIterator[Stack]:
    name = f"faults_{uuid.uuid4().hex[:8]}"
    database = await private.postgres.create_database(name)
    env = clean_env(
        tmp_path / "app",
        STREAMCART_DATABASE_URL=database,
        STREAMCART_DATABASE_POOL_SIZE="4",
        STREAMCART_REDIS_URL=private.redis.url,
        STREAMCART_REDIS_PREFIX=f"{name}:",
        STREAMCART_AMQP_URL=private.rabbit.url,
        STREAMCART_JWT_SECRET=secrets.token_urlsafe(32),
        STREAMCART_SEPAY_API_KEY=SEPAY_KEY,
        STREAMCART_PASSWORD_TIME_COST="1",
        STREAMCART_PASSWORD_MEMORY_KIB="1024",
        STREAMCART_SHUTDOWN_TIMEOUT="2",
        STREAMCART_SWEEP_INTERVAL="3600",
        STREAMCART_RECORD_STREAMS="false",
    )
    audit = EventAudit(private.rabbit.url, f"faulttest.{name}")
    await audit.start()  # bound before the app publishes anything
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        api = ServerApi(ServerProcess(env, tmp_path / "app-0.log"), http)
        try:
            await api.server.wait_ready(http)
            seller = await seller_with_shop(api, "seller@example.com")
            shop_id = seller["shop"]["id"]
            big = await create_product(api, seller["token"], shop_id, name="Big", stock=BIG_STOCK)
            hot = await create_product(api, seller["token"], shop_id, name="Hot", stock=HOT_STOCK)
            tokens = [(await buyer(api, f"b{i}@example.com"))["token"] for i in range(BUYERS)]
            yield Stack(
                api=api,
                http=http,
                env=env,
                logs=tmp_path,
                database=database,
                audit=audit,
                tokens=tokens,
                lines=[
                    *[{"product_id": big["id"], "quantity": 1}] * 4,
                    {"product_id": hot["id"], "quantity": HOT_QUANTITY},
                ],
                stock={
                    big["variants"][0]["id"]: BIG_STOCK,
                    hot["variants"][0]["id"]: HOT_STOCK,
                },
            )
        finally:
            print(api.server.explain("at the end of the test"))
            await api.server.stop()
            await audit.close()


# --- one scenario ------------------------------------------------------------------------


Fault = Callable[[Stack], Awaitable[float]]  # does the outage; returns when it was over


@dataclass
class Outcome:
    answers: list[Answer]
    during: list[Answer]
    checkout_recovery: float
    delivery_recovery: float | None
    backlog_delivered: float


async def under_load(stack: Stack, fault: Fault, *, app_down: bool = False) -> Outcome:
    """Load, the fault, recovery, more load; then a Sepay transfer posted during the
    fault (retried like Sepay until 2xx) and twice afterwards, and all the audits."""
    unpaid = await placed_order(stack)
    load = CheckoutLoad(stack.api, stack.tokens, stack.lines)
    load.start()
    try:
        await asyncio.sleep(WARM_UP)
        began = time.monotonic()
        payment = asyncio.create_task(pay_during(stack, unpaid, began))
        back = await fault(stack)
        await eventually(lambda: load.first_success_after(back), within=RECOVER_WITHIN)
        recovered = load.first_success_after(back)
        await asyncio.sleep(AFTER_RECOVERY)
    finally:
        answers = await load.stop()
    transfer_body = await payment
    await retry_until_accepted(stack, transfer_body)
    for answer in await asyncio.gather(*(webhook(stack.api, transfer_body) for _ in range(2))):
        assert answer.status == 200, await answer.text()

    during = [a for a in answers if began <= a.sent < recovered]
    wrong = [a for a in answers if not acceptable(a, refused_while_down=app_down)]
    assert not wrong, stack.server.explain(f"answers outside the contract: {tally(wrong)}")
    await audit_stock(stack, answers)
    await audit_payment(stack, unpaid)
    last_delivery = await audit_events(stack)
    return Outcome(
        answers, during, recovered - back, _delivery_recovery(stack, back), last_delivery - back
    )


def _delivery_recovery(stack: Stack, back: float) -> float | None:
    first = stack.audit.first_after(back)
    return None if first is None else first - back


def report(name: str, outcome: Outcome) -> None:
    delivery = outcome.delivery_recovery
    print(
        f"\n{name}: {len(outcome.answers)} checkouts, during the fault {tally(outcome.during)};"
        f" first successful checkout {outcome.checkout_recovery:.2f} s after the backend was"
        " back, first event delivered "
        + (f"{delivery:.2f} s after" if delivery is not None else "never after")
        + f", every order event {outcome.backlog_delivered:.2f} s after"
    )


async def placed_order(stack: Stack) -> dict:
    """An unpaid bank-transfer order of one big unit, placed before the fault."""
    line = stack.lines[0]
    body = {"payment_method": "bank_transfer", "items": [line]}
    response = await stack.api.post(
        "/api/orders/checkout", json=body, headers={"Authorization": f"Bearer {stack.tokens[0]}"}
    )
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    return order


async def pay_during(stack: Stack, order: dict, began: float) -> dict:
    """Sepay's first delivery of the transfer, once the fault is under way: 2xx, or a
    503 Sepay will retry (no answer at all only while the app itself is down)."""
    await asyncio.sleep(max(0.0, began + 1.0 - time.monotonic()))
    body = transfer(order["payment"]["code"], order["payment"]["amount"])
    with contextlib.suppress(aiohttp.ClientConnectionError):
        response = await webhook(stack.api, body)
        assert response.status in (200, 503), stack.server.explain(
            f"webhook during the fault: {response.status} {await response.text()}"
        )
    return body


async def retry_until_accepted(stack: Stack, body: dict) -> None:
    async def accepted() -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            return (await webhook(stack.api, body)).status == 200
        return False

    await eventually(accepted, within=RECOVER_WITHIN)


# --- audits, read straight from the database ---------------------------------------------


@contextlib.asynccontextmanager
async def database(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(stack.database)
    try:
        yield connection
    finally:
        await connection.close()


async def audit_stock(stack: Stack, answers: list[Answer]) -> None:
    """Per variant: units ordered (live orders) + units left == initial stock, nothing
    negative, reservations match, no order for more than the stock; and the database
    has every order the load was told about (and no more than it may have missed)."""
    async with database(stack) as db:
        for variant_id, initial in stack.stock.items():
            on_hand, reserved = await db.fetchrow(STOCK, variant_id)
            held, committed = await db.fetchrow(RESERVED, variant_id)
            ordered, largest = await db.fetchrow(ORDERED, variant_id)
            assert 0 <= reserved <= on_hand, (variant_id, on_hand, reserved)
            assert (reserved, initial - on_hand) == (held, committed), variant_id
            assert ordered + (on_hand - reserved) == initial, (variant_id, ordered, on_hand)
            assert largest <= initial, (variant_id, largest)
        in_database = await db.fetchval(ORDERS_PLACED) - 1  # the one paid during the fault
    told = sum(1 for a in answers if a.status == 201)
    unknown = sum(1 for a in answers if a.status is None)
    assert told <= in_database <= told + unknown, (told, in_database, unknown)


async def audit_payment(stack: Stack, order: dict) -> None:
    """The transfer was posted three times or more: applied once."""
    async with database(stack) as db:
        payment = await db.fetchrow(PAYMENT, order["id"])
        paid_events = await db.fetchval(PAID_EVENTS, order["id"])
        paid_steps = await db.fetchval(PAID_STEPS, order["id"])
    assert payment["status"] == "paid", dict(payment)
    assert (payment["received"], payment["refund_due"]) == (order["payment"]["amount"], 0)
    assert (paid_events, paid_steps) == (1, 1)


async def audit_events(stack: Stack) -> float:
    """Every committed `order.*` event reaches the outside consumer (copies allowed);
    when the last of them arrived."""
    async with database(stack) as db:
        committed = {row["id"] for row in await db.fetch(ORDER_EVENTS)}

    def missing() -> set[str]:
        return committed - stack.audit.arrived.keys()

    with contextlib.suppress(AssertionError):
        await eventually(lambda: not missing(), within=DELIVER_WITHIN)
    if lost := missing():
        async with database(stack) as db:
            rows = await db.fetch(LOST_EVENTS, list(lost))
        raise AssertionError(
            f"{len(lost)} of {len(committed)} order events never delivered: "
            + "; ".join(f"{r['type']} published {r['published_at']}" for r in rows[:8])
        )
    return max(stack.audit.arrived[event_id] for event_id in committed)


STOCK = "SELECT on_hand, reserved FROM variants WHERE id = $1"
RESERVED = (
    "SELECT coalesce(sum(quantity) FILTER (WHERE status = 'held'), 0),"
    " coalesce(sum(quantity) FILTER (WHERE status = 'committed'), 0)"
    " FROM reservations WHERE variant_id = $1"
)
ORDERED = (
    "SELECT coalesce(sum(i.quantity), 0), coalesce(max(i.quantity), 0)"
    " FROM order_items i JOIN orders o ON o.id = i.order_id"
    " WHERE i.variant_id = $1 AND o.status NOT IN ('cancelled', 'expired')"
)
ORDERS_PLACED = "SELECT count(*) FROM orders"
PAYMENT = "SELECT status, received, refund_due FROM payments WHERE order_id = $1"
PAID_EVENTS = "SELECT count(*) FROM outbox WHERE type = 'order.paid' AND data->>'order_id' = $1"
PAID_STEPS = "SELECT count(*) FROM order_history WHERE order_id = $1 AND to_status = 'paid'"
ORDER_EVENTS = "SELECT id FROM outbox WHERE type LIKE 'order.%'"
LOST_EVENTS = (
    "SELECT type, published_at, attempts FROM outbox WHERE id = any($1::text[])"
    " ORDER BY occurred_at"
)


# --- the scenarios ---------------------------------------------------------------------


async def outage(stop: Callable[[], None], start: Callable[[], None], seconds: float) -> float:
    """Stop a backend, keep it down `seconds`, start it; when it was back."""
    await asyncio.to_thread(stop)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(start)
    return time.monotonic()


async def test_rabbitmq_down_30_s(stack: Stack, private: Private):
    """Checkouts go on (the outbox keeps the events); the events follow once it is back."""

    async def fault(_: Stack) -> float:
        return await outage(private.rabbit.stop, private.rabbit.start, RABBIT_OUTAGE)

    outcome = await under_load(stack, fault)
    report("RabbitMQ stopped 30 s", outcome)
    assert any(a.status == 201 for a in outcome.during), "checkouts stopped with the bus"
    # The relay resumes when the bus reconnects, not when its back-off (up to 30 s) ends.
    assert outcome.delivery_recovery is not None
    assert outcome.delivery_recovery < RESUME_WITHIN, outcome.delivery_recovery


async def test_postgres_restarted(stack: Stack, private: Private):
    async def fault(_: Stack) -> float:
        return await outage(private.postgres.stop, private.postgres.start, POSTGRES_OUTAGE)

    report("PostgreSQL restarted", await under_load(stack, fault))


async def test_app_killed_and_restarted(stack: Stack):
    """SIGKILL mid-load: nothing committed is lost, nothing half-done is left behind."""

    async def fault(stack: Stack) -> float:
        stack.server.process.kill()
        await asyncio.to_thread(stack.server.process.wait)
        back = time.monotonic()
        await stack.restart()
        return back

    report("app SIGKILLed", await under_load(stack, fault, app_down=True))


async def test_redis_down_10_s(stack: Stack, private: Private):
    """Answers normally from the database or with a documented 503, never a 500."""

    async def fault(_: Stack) -> float:
        return await outage(private.redis.stop, private.redis.start, REDIS_OUTAGE)

    report("Redis stopped 10 s", await under_load(stack, fault))
