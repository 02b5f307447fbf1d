"""Live sessions over REST: scheduling, stream keys, going live and ending, live prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from live.app import RTMP_SERVER
from live.sessions.routes import LIVE_SESSIONS
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer


@pytest.fixture
async def seller(api):
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(
        api, seller["token"], seller["shop"]["id"], name="Mũ len", base_price=200_000, stock=8
    )
    return {**seller, "product": product}


async def schedule(api, seller, **extra):
    body = {
        "shop_id": seller["shop"]["id"],
        "title": "Săn sale tối nay",
        "scheduled_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "products": [{"product_id": seller["product"]["id"], "live_price": 150_000}],
        **extra,
    }
    return await api.post("/api/live-sessions", json=body, headers=bearer(seller["token"]))


async def scheduled(api, seller) -> dict:
    response = await schedule(api, seller)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_create_returns_obs_settings_once(api, seller):
    live = await scheduled(api, seller)
    assert live["status"] == "scheduled"
    port = api.app[RTMP_SERVER].port  # the tests' apps bind any free port
    assert port != 0 and live["stream"]["server_url"] == f"rtmp://localhost:{port}/live"
    key = live["stream"]["stream_key"]
    assert key.startswith("sk_") and len(key) > 30
    (item,) = live["products"]
    assert item["live_price"] == 150_000 and item["price"] == 200_000 and item["available"] == 8
    public = await (await api.get(f"/api/live-sessions/{live['id']}")).text()
    assert key not in public and "stream_key" not in public
    assert (await api.app[LIVE_SESSIONS].by_stream_key(key)).id == live["id"]


async def test_rotation_retires_the_old_key(api, seller):
    live = await scheduled(api, seller)
    old = live["stream"]["stream_key"]
    response = await api.post(
        f"/api/live-sessions/{live['id']}/stream-key/rotate", headers=bearer(seller["token"])
    )
    new = (await response.json())["stream_key"]
    service = api.app[LIVE_SESSIONS]
    assert new != old
    assert await service.by_stream_key(old) is None
    assert (await service.by_stream_key(new)).id == live["id"]


async def test_only_the_shop_team_manages_a_session(api, seller):
    live = await scheduled(api, seller)
    other = await seller_with_shop(api, "other@example.com")
    for path in ("start", "end", "stream-key/rotate"):
        response = await api.post(
            f"/api/live-sessions/{live['id']}/{path}", headers=bearer(other["token"])
        )
        await assert_problem(response, 403, "not-your-shop")
    response = await schedule(api, {**seller, "token": other["token"]})
    await assert_problem(response, 403, "not-your-shop")


async def test_products_must_belong_to_the_shop(api, seller):
    other = await seller_with_shop(api, "other@example.com")
    foreign = await create_product(
        api, other["token"], other["shop"]["id"], name="X", base_price=1_000, stock=1
    )
    response = await schedule(api, seller, products=[{"product_id": foreign["id"]}])
    body = await assert_problem(response, 422, "product-not-in-shop")
    assert body["product_ids"] == [foreign["id"]]


async def test_start_end_and_listing_by_status(api, seller):
    live = await scheduled(api, seller)
    url = f"/api/live-sessions/{live['id']}"
    headers = bearer(seller["token"])
    response = await api.post(f"{url}/start", headers=headers)
    assert (await response.json())["status"] == "live"
    await assert_problem(await api.post(f"{url}/start", headers=headers), 409, "not-scheduled")
    listing = await (await api.get("/api/live-sessions?status=live")).json()
    assert [s["id"] for s in listing["items"]] == [live["id"]]
    ended = await (await api.post(f"{url}/end", headers=headers)).json()
    assert ended["status"] == "ended" and ended["ended_at"] is not None
    await assert_problem(await api.post(f"{url}/end", headers=headers), 409, "live-session-ended")
    assert await api.app[LIVE_SESSIONS].by_stream_key(live["stream"]["stream_key"]) is None
    assert (await (await api.get("/api/live-sessions?status=live")).json())["items"] == []


async def test_live_price_applies_only_while_live(api, seller):
    live = await scheduled(api, seller)
    ann = await buyer(api, "ann@example.com")
    line = {"product_id": seller["product"]["id"], "quantity": 1, "live_session_id": live["id"]}
    cart = await (await api.post("/api/cart/items", json=line, headers=bearer(ann["token"]))).json()
    assert cart["items"][0]["unit_price"] == 200_000  # scheduled: regular price
    await api.post(f"/api/live-sessions/{live['id']}/start", headers=bearer(seller["token"]))
    cart = await (await api.get("/api/cart", headers=bearer(ann["token"]))).json()
    assert cart["items"][0]["unit_price"] == 150_000 and cart["items"][0]["price_changed"]
    response = await api.post(
        "/api/orders/checkout",
        json={"payment_method": "bank_transfer", "items": [line]},
        headers=bearer(ann["token"]),
    )
    (order,) = (await response.json())["orders"]
    assert order["total"] == 150_000 and order["live_session_id"] == live["id"]


async def test_invalid_bodies_are_422(api, seller):
    for bad in (
        {"scheduled_at": "2026-12-01T10:00:00"},
        {"title": ""},
        {"products": [{"product_id": seller["product"]["id"], "live_price": -1}]},
    ):
        await assert_problem(await schedule(api, seller, **bad), 422, "validation-error")
