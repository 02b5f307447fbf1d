"""The express checkout on PostgreSQL (named lines, bank transfer, regular prices):
two statements on asyncpg outside any transaction. It must write exactly what the
general checkout writes, change nothing when it fails, retry a colliding generated code
and wake the outbox relay only after it committed."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest
from sqlalchemy import select

from commerce.orders import staging as staging_module
from commerce.orders.checkout import Line, retrying_transaction
from commerce.orders.express import ExpressCheckout
from commerce.orders.models import Order, OrderEvent, OrderItem, PaymentMethod, Reservation
from commerce.orders.routes import CHECKOUT
from commerce.payments.models import Payment
from live.app import ALLOCATIONS
from live.http.system import BACKENDS
from live.sessions.models import LiveAllocation, LiveProduct
from live.sessions.pricing import LiveSessionPrices
from storage.outbox import OutboxRow
from storage.web import Problem
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.hub_support import seller_on_air

pytestmark = pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)

# Differ between any two orders by design: identities, codes, clock readings, and the
# stock left after each.
UNIQUE_PER_ORDER = {
    "available",
    "id",
    "order_id",
    "code",
    "created_at",
    "updated_at",
    "payment_deadline",
    "expires_at",
    "at",
    "occurred_at",
}
TRANSFER = PaymentMethod.BANK_TRANSFER
ADDRESS = "1 Lê Lợi, Quận 1"


@pytest.fixture
async def shop(api):
    """A product with two variants (sizes priced apart) and a buyer."""
    seller = await seller_with_shop(api, "seller@example.com")
    shirt = await create_product(
        api,
        seller["token"],
        seller["shop"]["id"],
        name="Áo",
        variants=[
            {"sku": "S", "options": {"size": "S"}, "stock": 5},
            {"sku": "L", "options": {"size": "L"}, "price": 150_000, "stock": 2},
        ],
    )
    ann = await buyer(api, "ann@example.com")
    return {"shirt": shirt, "buyer_id": ann["user"]["id"]}


def express(api, events_committed=lambda: None) -> ExpressCheckout:
    backends = api.app[BACKENDS]
    return ExpressCheckout(
        backends.driver_pool,
        backends.engine.dialect,
        LiveSessionPrices(),
        api.app[ALLOCATIONS],
        timedelta(minutes=15),
        events_committed,
    )


def lines_of(shirt: dict) -> list[Line]:
    small, large = (variant["id"] for variant in shirt["variants"])
    return [Line(shirt["id"], 2, small), Line(shirt["id"], 1, large)]


async def written(api, order_id: str) -> dict:
    """Everything stored for one order, without what differs between any two orders."""
    async with api.app[BACKENDS].sessions() as session:
        found = {}
        for model, column in (
            (Order, Order.id),
            (OrderItem, OrderItem.order_id),
            (Reservation, Reservation.order_id),
            (Payment, Payment.order_id),
            (OrderEvent, OrderEvent.order_id),
        ):
            rows = (await session.scalars(select(model).where(column == order_id))).all()
            found[model.__tablename__] = sorted(map(_comparable, rows), key=repr)
        events = (await session.scalars(select(OutboxRow))).all()
        found["events"] = sorted(
            (
                (event.type, _without_unique(event.data))
                for event in events
                if event.type != "order.created" or event.data["order_id"] == order_id
            ),
            key=repr,
        )
    return found


async def forget_events(api) -> None:
    async with api.app[BACKENDS].sessions() as session, session.begin():
        await session.execute(OutboxRow.__table__.delete())


def _comparable(row) -> dict:
    return _without_unique({c.key: getattr(row, c.key) for c in row.__table__.columns})


def _without_unique(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in UNIQUE_PER_ORDER}


async def test_express_writes_what_the_general_checkout_writes(api, shop):
    service = api.app[CHECKOUT]
    (fast,) = await express(api).place(
        shop["buyer_id"], TRANSFER, lines_of(shop["shirt"]), shipping_address=ADDRESS
    )
    fast_rows = await written(api, fast.order.id)
    await forget_events(api)  # compare each order's own events
    (general,) = await retrying_transaction(
        api.app[BACKENDS].sessions,
        lambda session: service.place_in(
            session,
            shop["buyer_id"],
            TRANSFER,
            lines_of(shop["shirt"]),
            shipping_address=ADDRESS,
        ),
    )
    general_rows = await written(api, general.order.id)
    assert fast_rows == general_rows
    assert fast_rows["orders"][0]["total"] == 2 * 100_000 + 150_000
    assert [e[0] for e in fast_rows["events"]] == ["order.created"] + ["stock.changed"] * 2
    assert fast.payment is not None and fast.payment.amount == 350_000


async def test_a_short_line_changes_nothing_and_wakes_nobody(api, shop):
    woken = []
    small, large = (variant["id"] for variant in shop["shirt"]["variants"])
    lines = [Line(shop["shirt"]["id"], 1, small), Line(shop["shirt"]["id"], 3, large)]
    with pytest.raises(Problem) as refused:
        await express(api, lambda: woken.append(1)).place(shop["buyer_id"], TRANSFER, lines)
    assert refused.value.status == 409 and refused.value.extra["variant_id"] == large
    assert woken == []
    async with api.app[BACKENDS].sessions() as session:
        for model in (Order, Reservation, Payment, OutboxRow):
            assert (await session.scalars(select(model))).first() is None, model.__name__
    (placed,) = await express(api, lambda: woken.append(1)).place(
        shop["buyer_id"], TRANSFER, lines[:1]
    )
    assert woken == [1] and placed.items[0].quantity == 1


async def test_a_colliding_payment_code_is_retried_with_a_new_one(api, shop, monkeypatch):
    (first,) = await express(api).place(shop["buyer_id"], TRANSFER, lines_of(shop["shirt"])[:1])
    assert first.payment is not None
    taken = first.payment.code
    fresh = count()
    monkeypatch.setattr(
        staging_module,
        "payment_code",
        lambda: taken if next(fresh) == 0 else f"SCRETRY{next(fresh)}",
    )
    (second,) = await express(api).place(shop["buyer_id"], TRANSFER, lines_of(shop["shirt"])[:1])
    assert second.payment is not None and second.payment.code.startswith("SCRETRY")
    async with api.app[BACKENDS].sessions() as session:
        held = (await session.scalars(select(Reservation))).all()
    assert sorted(r.quantity for r in held) == [2, 2]  # the failed attempt held nothing


@pytest.mark.parametrize(
    ("method", "lines", "taken"),
    [
        (TRANSFER, [Line("p", 1)], True),
        (TRANSFER, None, False),  # the cart
        (PaymentMethod.COD, [Line("p", 1)], False),
        (TRANSFER, [Line("p", 1, live_session_id="s")], True),
        (TRANSFER, [Line("p", 1, unit_price=5)], False),  # a flash-sale claim
    ],
)
async def test_express_takes_named_lines_at_regular_prices_by_transfer(api, method, lines, taken):
    assert express(api).takes(method, lines) is taken


@pytest.fixture
async def on_show(api):
    """A live session showing a product at a live price with 3 units set aside."""
    seller = await seller_on_air(api, "host@example.com", stock=20, live_stock=3)
    ann = await buyer(api, "ann@example.com")
    return {**seller, "buyer_id": ann["user"]["id"]}


async def allocations(api) -> list[tuple[str, int]]:
    async with api.app[BACKENDS].sessions() as session:
        rows = (await session.scalars(select(LiveAllocation))).all()
        sold = await session.scalar(select(LiveProduct.live_sold))
    return sorted((row.order_id, row.quantity) for row in rows), sold


async def test_a_live_line_gets_the_live_price_and_counts_as_the_general_path_does(api, on_show):
    line = [Line(on_show["product"]["id"], 1, live_session_id=on_show["live_id"])]
    await forget_events(api)
    (fast,) = await express(api).place(on_show["buyer_id"], TRANSFER, line)
    fast_rows = await written(api, fast.order.id)
    await forget_events(api)
    (general,) = await retrying_transaction(
        api.app[BACKENDS].sessions,
        lambda session: api.app[CHECKOUT].place_in(session, on_show["buyer_id"], TRANSFER, line),
    )
    assert fast_rows == await written(api, general.order.id)
    assert fast.order.live_session_id == on_show["live_id"] and fast.order.total == 90_000
    assert await allocations(api) == (sorted([(fast.order.id, 1), (general.order.id, 1)]), 2)


async def test_an_exhausted_allocation_refuses_and_rolls_the_order_back(api, on_show):
    line = [Line(on_show["product"]["id"], 2, live_session_id=on_show["live_id"])]
    (first,) = await express(api).place(on_show["buyer_id"], TRANSFER, line)
    with pytest.raises(Problem) as refused:
        await express(api).place(on_show["buyer_id"], TRANSFER, line)
    assert refused.value.code == "live-stock-exhausted"
    assert await allocations(api) == ([(first.order.id, 2)], 2)
    async with api.app[BACKENDS].sessions() as session:
        assert len((await session.scalars(select(Order))).all()) == 1
        held = (await session.scalars(select(Reservation))).all()
    assert [r.quantity for r in held] == [2]  # the refused order's stock was not kept


async def test_a_variant_held_twice_is_left_to_the_general_path(api, shop):
    """One variant bought at two prices (regular, and "from" a session): one statement
    cannot update its row twice, so the express path declines and writes nothing."""
    small = shop["shirt"]["variants"][0]["id"]
    lines = [
        Line(shop["shirt"]["id"], 1, small),
        Line(shop["shirt"]["id"], 1, small, live_session_id="not-on-show"),
    ]
    assert await express(api).place(shop["buyer_id"], TRANSFER, lines) is None
    async with api.app[BACKENDS].sessions() as session:
        assert (await session.scalars(select(Order))).first() is None
    (placed,) = await api.app[CHECKOUT].checkout(shop["buyer_id"], TRANSFER, lines)
    assert sorted(item.quantity for item in placed.items) == [1, 1]
