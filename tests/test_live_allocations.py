"""A session's own stock allocation (`live_stock`) is enforced at checkout and given back,
once, when an order bought from the stream is cancelled or expires; units of a
cancelled flash-sale claim go back to the flash sale and to the buyer's allowance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from live.http.system import BACKENDS
from live.sessions.allocations import give_back
from live.sessions.models import FlashClaim, FlashSale, LiveProduct
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer
from tests.test_flash import claim, events, started
from tests.test_orders import stock

WAIT_SECONDS = 10


@pytest.fixture
async def shop(api):
    """A session showing a product with 20 in stock, 3 of them set aside for the stream."""
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(
        api, seller["token"], seller["shop"]["id"], name="Áo khoác", base_price=300_000, stock=20
    )
    response = await api.post(
        "/api/live-sessions",
        json={
            "shop_id": seller["shop"]["id"],
            "title": "Xả kho",
            "scheduled_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "products": [{"product_id": product["id"], "live_stock": 3}],
        },
        headers=bearer(seller["token"]),
    )
    assert response.status == 201, await response.text()
    live = await response.json()
    await api.post(f"/api/live-sessions/{live['id']}/start", headers=bearer(seller["token"]))
    return {
        **seller,
        "product": product,
        "variant_id": product["variants"][0]["id"],
        "live": live,
    }


async def buy(api, token, shop, quantity, *, from_stream=True):
    line = {"product_id": shop["product"]["id"], "quantity": quantity}
    if from_stream:
        line["live_session_id"] = shop["live"]["id"]
    return await api.post(
        "/api/orders/checkout",
        json={"payment_method": "bank_transfer", "items": [line]},
        headers=bearer(token),
    )


async def live_sold(api, shop) -> int:
    async with api.app[BACKENDS].sessions() as session:
        return await session.scalar(
            select(LiveProduct.live_sold).where(
                LiveProduct.live_session_id == shop["live"]["id"],
                LiveProduct.product_id == shop["product"]["id"],
            )
        )


async def eventually(probe, expected):
    """The give-back follows the order's event through the bus: wait for it, bounded."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while (value := await probe()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{value!r} != {expected!r}"
        await asyncio.sleep(0.05)


async def test_the_allocation_caps_sales_from_the_stream(api, shop):
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    assert (await buy(api, ann["token"], shop, 2)).status == 201
    body = await assert_problem(await buy(api, bob["token"], shop, 2), 409, "live-stock-exhausted")
    assert body["requested"] == 2 and body["live_session_id"] == shop["live"]["id"]
    assert await stock(api, shop["variant_id"]) == (20, 2)  # the refused order held nothing
    assert await live_sold(api, shop) == 2
    assert (await buy(api, bob["token"], shop, 1)).status == 201
    assert (await buy(api, bob["token"], shop, 5, from_stream=False)).status == 201
    assert await live_sold(api, shop) == 3
    assert await stock(api, shop["variant_id"]) == (20, 8)


async def test_cancelled_and_expired_orders_give_their_units_back(api, shop):
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    order = await (await buy(api, ann["token"], shop, 3)).json()
    (order,) = order["orders"]
    response = await api.post(
        f"/api/orders/{order['id']}/cancel", json={}, headers=bearer(ann["token"])
    )
    assert response.status == 200
    await eventually(lambda: live_sold(api, shop), 0)
    assert (await buy(api, bob["token"], shop, 3)).status == 201
    async with api.app[BACKENDS].sessions.begin() as session:
        assert await give_back(session, order["id"]) == []  # a duplicated event returns nothing
    assert await live_sold(api, shop) == 3


async def test_racing_buyers_never_pass_the_allocation(api, shop, sql_url):
    buyers = [await buyer(api, f"b{i}@example.com") for i in range(12)]
    responses = await asyncio.gather(*(buy(api, b["token"], shop, 1) for b in buyers))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 3 + [409] * 9
    assert await live_sold(api, shop) == 3
    assert await stock(api, shop["variant_id"]) == (20, 3)


async def test_an_ended_session_no_longer_limits_sales(api, shop):
    ann = await buyer(api, "ann@example.com")
    live_id = shop["live"]["id"]
    await api.post(f"/api/live-sessions/{live_id}/end", headers=bearer(shop["token"]))
    response = await buy(api, ann["token"], shop, 5)
    assert response.status == 201, await response.text()
    assert await live_sold(api, shop) == 0


async def test_a_cancelled_claim_returns_units_to_the_flash_sale(api, shop):
    ann = await buyer(api, "ann@example.com")
    flash = await started(api, shop, quantity=3, per_buyer_limit=2)
    order = await (await claim(api, ann["token"], flash, quantity=2)).json()
    await assert_problem(await claim(api, ann["token"], flash), 409, "flash-limit-reached")
    await api.post(f"/api/orders/{order['id']}/cancel", json={}, headers=bearer(ann["token"]))

    async def flash_sold():
        async with api.app[BACKENDS].sessions() as session:
            return (await session.get(FlashSale, flash["id"])).sold

    await eventually(flash_sold, 0)
    async with api.app[BACKENDS].sessions() as session:
        allowance = await session.get(FlashClaim, (flash["id"], ann["user"]["id"]))
        assert allowance.quantity == 0
    (returned,) = await events(api, "flash.returned")
    assert returned["remaining"] == 3 and returned["returned"] == 2
    assert (await claim(api, ann["token"], flash, quantity=2)).status == 201
    assert await live_sold(api, shop) == 2
