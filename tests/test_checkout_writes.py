"""What a checkout writes, on SQLite and PostgreSQL (where the stock reservation and every
new row go in one statement): several lines, a short line among them, a unit bought
twice in one checkout, and the events in the order they are relayed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from commerce.catalog.models import Variant
from commerce.orders.models import Order, OrderItem, Reservation
from commerce.payments.models import Payment
from live.http.system import BACKENDS
from storage.outbox import OutboxRow
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer


@pytest.fixture
async def two_shops(api):
    """Two sellers' products: 5 units of one, 2 of the other."""
    first = await seller_with_shop(api, "one@example.com")
    second = await seller_with_shop(api, "two@example.com")
    shirt = await create_product(api, first["token"], first["shop"]["id"], name="Áo", stock=5)
    hat = await create_product(api, second["token"], second["shop"]["id"], name="Nón", stock=2)
    return {"shirt": shirt, "hat": hat}


async def checkout(api, token: str, items: list[dict]):
    return await api.post(
        "/api/orders/checkout",
        json={"payment_method": "bank_transfer", "items": items},
        headers=bearer(token),
    )


async def available(api, product: dict) -> int:
    async with api.app[BACKENDS].sessions() as session:
        variant = await session.get(Variant, product["variants"][0]["id"])
        return variant.on_hand - variant.reserved


async def outbox(api) -> list[OutboxRow]:
    async with api.app[BACKENDS].sessions() as session:
        return list(
            (
                await session.scalars(
                    select(OutboxRow).order_by(OutboxRow.occurred_at, OutboxRow.id)
                )
            ).all()
        )


async def count(api, model) -> int:
    async with api.app[BACKENDS].sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_lines_of_two_shops_become_two_orders_and_announce_stock_first(api, two_shops):
    ann = await buyer(api, "ann@example.com")
    shirt, hat = two_shops["shirt"], two_shops["hat"]
    response = await checkout(
        api,
        ann["token"],
        [{"product_id": shirt["id"], "quantity": 3}, {"product_id": hat["id"], "quantity": 2}],
    )
    assert response.status == 201, await response.text()
    orders = (await response.json())["orders"]
    assert sorted((o["items"][0]["name"], o["items"][0]["quantity"]) for o in orders) == [
        ("Nón", 2),
        ("Áo", 3),
    ]
    assert all(o["payment"]["amount"] == o["total"] for o in orders)
    assert (await available(api, shirt), await available(api, hat)) == (2, 0)
    assert await count(api, Reservation) == 2 and await count(api, Payment) == 2
    events = await outbox(api)  # in the order the relay publishes them
    assert [e.type for e in events] == ["stock.changed"] * 2 + ["order.created"] * 2
    stock = {e.data["product_id"]: e.data for e in events[:2]}
    assert stock[shirt["id"]] == {
        "shop_id": shirt["shop_id"],
        "product_id": shirt["id"],
        "variant_id": shirt["variants"][0]["id"],
        "available": 2,
    }
    assert stock[hat["id"]]["available"] == 0
    created = {e.data["order_id"]: e.data for e in events[2:]}
    assert {o["id"] for o in orders} == set(created)
    assert all(len(data["items"]) == 1 for data in created.values())


async def test_one_short_line_orders_nothing_and_names_that_line(api, two_shops):
    ann = await buyer(api, "ann@example.com")
    shirt, hat = two_shops["shirt"], two_shops["hat"]
    response = await checkout(
        api,
        ann["token"],
        [{"product_id": shirt["id"], "quantity": 1}, {"product_id": hat["id"], "quantity": 3}],
    )
    body = await assert_problem(response, 409, "out-of-stock")
    assert body["product_id"] == hat["id"] and body["requested"] == 3
    assert body["variant_id"] == hat["variants"][0]["id"]
    assert (await available(api, shirt), await available(api, hat)) == (5, 2)
    for model in (Order, OrderItem, Reservation, Payment, OutboxRow):
        assert await count(api, model) == 0, model.__name__


async def test_the_same_unit_twice_in_one_checkout_is_held_twice(api, two_shops):
    """Two lines of one variant (one of them "from" a live session that does not show it,
    so at the regular price): PostgreSQL cannot update a row twice in one statement, so
    this checkout takes the statement-per-line path there too."""
    ann = await buyer(api, "ann@example.com")
    shirt = two_shops["shirt"]
    response = await checkout(
        api,
        ann["token"],
        [
            {"product_id": shirt["id"], "quantity": 1},
            {"product_id": shirt["id"], "quantity": 3, "live_session_id": "not-on-show"},
        ],
    )
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    assert sorted(item["quantity"] for item in order["items"]) == [1, 3]
    assert await available(api, shirt) == 1
    stock = [e.data["available"] for e in await outbox(api) if e.type == "stock.changed"]
    assert stock == [4, 1]
    short = await checkout(
        api,
        ann["token"],
        [
            {"product_id": shirt["id"], "quantity": 1},
            {"product_id": shirt["id"], "quantity": 1, "live_session_id": "not-on-show"},
        ],
    )
    body = await assert_problem(short, 409, "out-of-stock")
    assert body["requested"] == 1
    assert await available(api, shirt) == 1
