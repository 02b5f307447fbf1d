"""The express checkout on PostgreSQL (named lines, bank transfer, regular prices):
two statements on asyncpg outside any transaction. It must write exactly what the
general checkout writes, change nothing when it fails, retry a colliding generated code
and wake the outbox relay only after it committed."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest
from sqlalchemy import select

from commerce.orders import checkout as checkout_module
from commerce.orders.checkout import Line, retrying_transaction
from commerce.orders.express import ExpressCheckout
from commerce.orders.models import Order, OrderEvent, OrderItem, PaymentMethod, Reservation
from commerce.orders.routes import CHECKOUT
from commerce.payments.models import Payment
from live.http.system import BACKENDS
from storage.outbox import OutboxRow
from storage.web import Problem
from tests.commerce_support import buyer, create_product, seller_with_shop

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
        backends.driver_pool, backends.engine.dialect, timedelta(minutes=15), events_committed
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
    async with api.app[BACKENDS].sessions() as session, session.begin():
        await session.execute(OutboxRow.__table__.delete())  # compare this order's events only
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
        checkout_module,
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
        (TRANSFER, [Line("p", 1, live_session_id="s")], False),
        (TRANSFER, [Line("p", 1, unit_price=5)], False),  # a flash-sale claim
    ],
)
async def test_express_takes_named_lines_at_regular_prices_by_transfer(api, method, lines, taken):
    assert express(api).takes(method, lines) is taken
