"""A session's own stock allocation (`live_stock`) is enforced at checkout and given back,
once, when an order bought from the stream is cancelled or expires; units of a
cancelled flash-sale claim go back to the flash sale and to the buyer's allowance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from live.app import ALLOCATION_GATEKEEPER
from live.http.system import BACKENDS
from live.sessions.allocations import allocation_stock, give_back
from live.sessions.models import FlashClaim, FlashSale, LiveProduct
from storage.gate import Verdict
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer
from tests.test_flash import claim, events, started
from tests.test_orders import stock

WAIT_SECONDS = 10
EXHAUSTED = "live-stock-exhausted"


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
    # The gate rereads the database just after that commit: until then it still refuses.
    await until_sold(lambda: buy(api, bob["token"], shop, 3))
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
    # The gates are resynchronised just after the give-back commits: a retry succeeds.
    await until_sold(lambda: claim(api, ann["token"], flash, quantity=2))
    assert await live_sold(api, shop) == 2


async def test_a_sold_out_allocation_is_refused_without_the_database(api, shop, statements):
    """The allocation's gate decides first: once the stream's units are gone, a buyer is
    refused before any SQL, and a buyer of the same product outside the stream is not."""
    buyers = [await buyer(api, f"b{i}@example.com") for i in range(4)]
    for b in buyers[:3]:
        assert (await buy(api, b["token"], shop, 1)).status == 201
    statements.clear()
    refused = await assert_problem(await buy(api, buyers[3]["token"], shop, 1), 409, EXHAUSTED)
    assert refused["live_session_id"] == shop["live"]["id"] and refused["requested"] == 1
    assert statements == []
    assert (await buy(api, buyers[3]["token"], shop, 1, from_stream=False)).status == 201
    assert await live_sold(api, shop) == 3


async def test_an_allocation_the_gate_lost_count_of_is_mended(api, shop):
    """A unit the gate holds for an attempt that never wrote (its process died) comes
    back after the pending time; the database's count decides what is left."""
    keeper = api.app[ALLOCATION_GATEKEEPER]
    keeper.pending_ms = 300
    stock_id = allocation_stock(shop["live"]["id"], shop["product"]["id"])
    ann = await buyer(api, "ann@example.com")
    assert (await buy(api, ann["token"], shop, 1)).status == 201  # loads the gate
    now = datetime.now(UTC)
    assert (await keeper.take(stock_id, "ghost", 2, "died", now)).verdict is Verdict.WON
    await assert_problem(await buy(api, ann["token"], shop, 1), 409, EXHAUSTED)
    await asyncio.sleep(0.4)
    await keeper.tick()  # or the app's own tick got there first
    assert (await buy(api, ann["token"], shop, 2)).status == 201
    assert await live_sold(api, shop) == 3


async def test_an_ended_session_stops_limiting_at_once(api, shop):
    """Sold out in the stream, then the stream ends: the product sells as usual again
    (the end resynchronises the allocation's gate, not its lease running out)."""
    buyers = [await buyer(api, f"b{i}@example.com") for i in range(4)]
    for b in buyers[:3]:
        assert (await buy(api, b["token"], shop, 1)).status == 201
    await assert_problem(await buy(api, buyers[3]["token"], shop, 1), 409, EXHAUSTED)
    ended = await api.post(
        f"/api/live-sessions/{shop['live']['id']}/end", headers=bearer(shop["token"])
    )
    assert ended.status == 200

    await until_sold(lambda: buy(api, buyers[3]["token"], shop, 1))


async def until_sold(attempt) -> None:
    """Repeat a refused `attempt` (refusals change nothing) until it answers 201."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while (await attempt()).status != 201:
        assert asyncio.get_running_loop().time() < deadline, "still refused"
        await asyncio.sleep(0.1)
