"""Concurrent adds of one unit to a cart merge into one line, and an add racing a
checkout of the same cart ends in success or a clear problem (never a 500), over real
HTTP on SQLite and PostgreSQL; migration 0007 merges the duplicate lines it finds."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import func, select, text

from commerce.carts.models import CartItem
from commerce.orders.models import OrderItem
from live.http.system import BACKENDS
from storage.ids import new_id
from storage.sql.migrate import alembic_config, upgrade
from tests.commerce_support import buyer
from tests.hub_support import seller_on_air
from tests.test_auth import bearer

RACERS = 20
ROUNDS = 8


@pytest.fixture
async def on_air(api):
    return await seller_on_air(api, stock=1_000)


async def add(api, token, product_id, live_session_id=None, quantity=1):
    body = {"product_id": product_id, "quantity": quantity}
    if live_session_id:
        body["live_session_id"] = live_session_id
    return await api.post("/api/cart/items", json=body, headers=bearer(token))


async def cart_lines(api, user_id) -> list[tuple[str | None, int]]:
    async with api.app[BACKENDS].sessions() as session:
        rows = await session.execute(
            select(CartItem.live_session_id, CartItem.quantity).where(CartItem.user_id == user_id)
        )
        return sorted(tuple(row) for row in rows)


@pytest.mark.parametrize("from_stream", [False, True], ids=["regular", "live"])
async def test_concurrent_adds_merge_into_one_line(api, on_air, from_stream):
    ann = await buyer(api, "ann@example.com")
    live_id = on_air["live_id"] if from_stream else None
    responses = await asyncio.gather(
        *(add(api, ann["token"], on_air["product"]["id"], live_id) for _ in range(RACERS))
    )
    assert [r.status for r in responses] == [201] * RACERS, [await r.text() for r in responses]
    assert await cart_lines(api, ann["user"]["id"]) == [(live_id, RACERS)]


async def test_adds_racing_a_checkout_lose_no_unit(api, on_air):
    """Every unit added is either in an order or still in the cart, whoever wins."""
    ann = await buyer(api, "ann@example.com")
    product_id = on_air["product"]["id"]
    added = 0
    for _ in range(ROUNDS):
        assert (await add(api, ann["token"], product_id)).status == 201
        added += 1
        checkout = api.post(
            "/api/orders/checkout",
            json={"payment_method": "bank_transfer"},
            headers=bearer(ann["token"]),
        )
        responses = await asyncio.gather(
            checkout, *(add(api, ann["token"], product_id) for _ in range(3))
        )
        added += sum(r.status == 201 for r in responses[1:])
        for response in responses:
            assert response.status in (201, 409), await response.text()
    async with api.app[BACKENDS].sessions() as session:
        ordered = await session.scalar(select(func.coalesce(func.sum(OrderItem.quantity), 0)))
    in_cart = sum(quantity for _, quantity in await cart_lines(api, ann["user"]["id"]))
    assert ordered + in_cart == added


async def test_migration_merges_duplicate_lines(api, sql_engine, on_air):
    ann = await buyer(api, "ann@example.com")
    assert (await add(api, ann["token"], on_air["product"]["id"], quantity=2)).status == 201
    await run_alembic(sql_engine, command.downgrade, "0006")
    async with sql_engine.begin() as conn:
        line = (await conn.execute(text("SELECT * FROM cart_items"))).mappings().one()
        for quantity in (3, 995):
            await conn.execute(
                text(
                    "INSERT INTO cart_items (id, user_id, product_id, variant_id, quantity,"
                    " live_session_id, price_when_added, added_at) VALUES (:id, :user_id,"
                    " :product_id, :variant_id, :quantity, NULL, :price, :added_at)"
                ),
                {
                    **line,
                    "id": new_id(),
                    "quantity": quantity,
                    "price": line["price_when_added"],
                },
            )
    await upgrade(sql_engine)
    # Merged, the quantity capped as an add caps it.
    assert await cart_lines(api, ann["user"]["id"]) == [(None, 999)]
    assert (await add(api, ann["token"], on_air["product"]["id"])).status == 201
    assert await cart_lines(api, ann["user"]["id"]) == [(None, 999)]


async def run_alembic(engine, action, revision: str) -> None:
    def run(connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        action(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
