"""Valid-looking input that used to end in a 500: a product listed twice in a session,
one checkout buying a product from two sessions of its shop, Sepay ids past 2^63 and
NUL characters in a Sepay transfer; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from live.http.system import BACKENDS
from live.sessions.models import LiveProduct
from tests.commerce_support import buyer, create_product
from tests.hub_support import seller_on_air
from tests.test_auth import assert_problem, bearer
from tests.test_live_allocations import EXHAUSTED, eventually
from tests.test_orders import SEPAY_KEY, get_order, placed, transactions, transfer, webhook


@pytest.fixture
def api_settings() -> dict:
    return {"sepay_api_key": SEPAY_KEY}


@pytest.fixture
async def on_air(api):
    """A live session showing a product with 10 in stock, 1 set aside for the stream."""
    return await seller_on_air(api, live_stock=1)


async def schedule(api, seller, products):
    return await api.post(
        "/api/live-sessions",
        json={
            "shop_id": seller["shop"]["id"],
            "title": "Phiên hai",
            "scheduled_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "products": products,
        },
        headers=bearer(seller["token"]),
    )


async def live_sold(api, live_id, product_id) -> int:
    async with api.app[BACKENDS].sessions() as session:
        return await session.scalar(
            select(LiveProduct.live_sold).where(
                LiveProduct.live_session_id == live_id, LiveProduct.product_id == product_id
            )
        )


async def buy(api, token, *lines):
    return await api.post(
        "/api/orders/checkout",
        json={"payment_method": "bank_transfer", "items": list(lines)},
        headers=bearer(token),
    )


async def test_a_product_listed_twice_is_refused(api, on_air):
    twice = [{"product_id": on_air["product"]["id"]}, {"product_id": on_air["product"]["id"]}]
    body = await assert_problem(await schedule(api, on_air, twice), 422, "duplicate-product")
    assert body["product_ids"] == [on_air["product"]["id"]]
    other = await create_product(api, on_air["token"], on_air["shop"]["id"], name="Khăn")
    response = await api.post(
        f"/api/live-sessions/{on_air['live_id']}/products",
        json={"products": [{"product_id": other["id"]}, {"product_id": other["id"]}]},
        headers=bearer(on_air["token"]),
    )
    await assert_problem(response, 422, "duplicate-product")
    listed = await api.get(f"/api/live-sessions/{on_air['live_id']}")
    assert [p["product_id"] for p in (await listed.json())["products"]] == [on_air["product"]["id"]]


async def test_one_checkout_buys_a_product_from_two_sessions(api, on_air):
    product_id = on_air["product"]["id"]
    second = await schedule(api, on_air, [{"product_id": product_id, "live_stock": 1}])
    assert second.status == 201, await second.text()
    live_ids = [on_air["live_id"], (await second.json())["id"]]
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")

    lines = [{"product_id": product_id, "quantity": 1, "live_session_id": i} for i in live_ids]
    response = await buy(api, ann["token"], *lines)
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    assert sum(item["quantity"] for item in order["items"]) == 2
    assert [await live_sold(api, i, product_id) for i in live_ids] == [1, 1]
    for line in lines:  # each session's cap holds
        await assert_problem(await buy(api, bob["token"], line), 409, EXHAUSTED)

    response = await api.post(
        f"/api/orders/{order['id']}/cancel", json={}, headers=bearer(ann["token"])
    )
    assert response.status == 200, await response.text()
    for live_id in live_ids:  # both sessions get their unit back
        await eventually(lambda live_id=live_id: live_sold(api, live_id, product_id), 0)


async def paid_by(api, transfer_body, token, order) -> None:
    response = await webhook(api, transfer_body)
    assert response.status == 200, await response.text()
    assert (await get_order(api, token, order["id"]))["status"] == "paid"


@pytest.mark.parametrize("sepay_id", [2**63, 2**64 + 7, 10**40])
async def test_a_sepay_id_past_bigint_is_recorded_once(api, on_air, sepay_id):
    ann = await buyer(api, "ann@example.com")
    order = await placed(api, ann["token"], on_air["product"]["id"])
    body = transfer(order["payment"]["code"], order["total"], sepay_id=sepay_id)
    await paid_by(api, body, ann["token"], order)
    assert (await webhook(api, body)).status == 200  # a redelivery applies nothing
    (row,) = await transactions(api)
    assert row.sepay_id == str(sepay_id) and row.outcome == "paid"


async def test_an_id_too_long_to_be_sepays_is_refused(api):
    response = await webhook(api, transfer("x", 1, sepay_id=10**70))
    await assert_problem(response, 422, "invalid-sepay-id")
    assert await transactions(api) == []


async def test_nul_characters_in_a_transfer_are_dropped_not_the_transfer(api, on_air):
    ann = await buyer(api, "ann@example.com")
    order = await placed(api, ann["token"], on_air["product"]["id"])
    code = order["payment"]["code"]
    body = {
        **transfer(f"\x00{code}\x00 chuyen tien", order["total"]),
        "gateway": "MB\x00Bank",
        "description": "\x00",
        "bankNote\x00": ["a\x00b", {"k\x00": "v\x00"}],
    }
    await paid_by(api, body, ann["token"], order)
    (row,) = await transactions(api)
    assert row.content == f"{code} chuyen tien" and row.outcome == "paid"
    assert row.payload["gateway"] == "MBBank" and row.payload["bankNote"] == ["ab", {"k": "v"}]
