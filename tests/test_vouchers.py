"""Vouchers through the REST API and Socket.IO, on SQLite and PostgreSQL: creating them,
the discount's maths, dropping one on air, claiming it, spending it at checkout once,
and getting it back when its order is cancelled or expires."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from commerce.vouchers.discount import discount
from commerce.vouchers.models import Voucher
from live.app import SWEEPER
from live.http.system import BACKENDS
from live.vouchers import report
from live.vouchers.gatekeeper import voucher_stock
from live.vouchers.wiring import VOUCHER_GATEKEEPER
from tests.bus_support import eventually
from tests.commerce_support import buyer, seller_with_shop
from tests.hub_support import joining, open_socket, seller_on_air
from tests.test_auth import assert_problem, bearer
from tests.test_orders import SEPAY_SETTINGS, transfer, webhook
from tests.test_vietqr import emv_fields

LIVE_PRICE = 90_000  # the product's price in the stream (seller_on_air)


@pytest.fixture
def api_settings():
    return SEPAY_SETTINGS


def voucher_body(**fields) -> dict:
    now = datetime.now(UTC)
    return {
        "code": "GIAM15",
        "kind": "percent",
        "value": 15,
        "max_discount": 20_000,
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
        "total": 100,
        **fields,
    }


async def create(api, show, token=None, **fields):
    return await api.post(
        f"/api/shops/{show['shop']['id']}/vouchers",
        json=voucher_body(**fields),
        headers=bearer(token or show["token"]),
    )


async def created(api, show, **fields) -> dict:
    response = await create(api, show, **fields)
    assert response.status == 201, await response.text()
    return await response.json()


async def drop(api, show, voucher, token=None, live_id=None, **body):
    return await api.post(
        f"/api/live-sessions/{live_id or show['live_id']}/vouchers/{voucher['id']}/drop",
        json=body,
        headers=bearer(token or show["token"]),
    )


async def dropped(api, show, **fields) -> dict:
    voucher = await created(api, show, **fields)
    response = await drop(api, show, voucher)
    assert response.status == 201, await response.text()
    return voucher


async def claim(api, show, voucher, token):
    return await api.post(
        f"/api/live-sessions/{show['live_id']}/vouchers/{voucher['id']}/claim",
        headers=bearer(token) if token else {},
    )


async def claimed(api, show, voucher, token) -> dict:
    response = await claim(api, show, voucher, token)
    assert response.status == 201, await response.text()
    return await response.json()


async def checkout(api, show, token, claim_id, quantity=1, in_stream=True):
    line = {"product_id": show["product"]["id"], "quantity": quantity}
    if in_stream:
        line["live_session_id"] = show["live_id"]
    return await api.post(
        "/api/orders/checkout",
        json={"payment_method": "bank_transfer", "items": [line], "voucher_claim_id": claim_id},
        headers=bearer(token),
    )


async def ordered(api, show, token, claim_id, **line) -> dict:
    response = await checkout(api, show, token, claim_id, **line)
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    return order


async def held(api, token) -> list[str]:
    response = await api.get("/api/me/vouchers", headers=bearer(token))
    assert response.status == 200
    return [item["claim_id"] for item in (await response.json())["items"]]


async def voucher_row(api, voucher_id) -> Voucher:
    async with api.app[BACKENDS].sessions() as session:
        return await session.get(Voucher, voucher_id)


def test_discount_maths():
    assert discount("percent", 15, None, 99_999) == 14_999  # 14,999.85 rounded down
    assert discount("percent", 50, 30_000, 100_000) == 30_000  # capped
    assert discount("percent", 100, None, 90_000) == 90_000
    assert discount("fixed", 20_000, None, 90_000) == 20_000
    assert discount("fixed", 50_000, None, 20_000) == 20_000  # never above the subtotal
    assert discount("fixed", 50_000, 10_000, 90_000) == 10_000


async def test_creating_is_for_the_shops_team_with_coherent_values(api, show, ann):
    await assert_problem(await create(api, show, ann["token"]), 403, "not-your-shop")
    other = await seller_with_shop(api, "other@example.com")
    await assert_problem(await create(api, show, other["token"]), 403, "not-your-shop")
    bad = (
        {"value": 150},
        {"kind": "half"},
        {"value": 0},
        {"total": 0},
        {"total": 2, "per_buyer_limit": 3},
        {"ends_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
        {"starts_at": "2026-12-04T10:00:00"},  # no time zone
    )
    for fields in bad:
        await assert_problem(await create(api, show, **fields), 422, "validation-error")
    voucher = await created(api, show, min_order=50_000)
    assert voucher["claimed"] == 0 and voucher["used"] == 0 and voucher["min_order"] == 50_000
    listed = await api.get(
        f"/api/shops/{show['shop']['id']}/vouchers", headers=bearer(show["token"])
    )
    assert [v["id"] for v in (await listed.json())["items"]] == [voucher["id"]]
    one = f"/api/vouchers/{voucher['id']}"
    await assert_problem(await api.get(one, headers=bearer(ann["token"])), 403, "not-your-shop")
    patched = await api.patch(one, json={"disabled": True}, headers=bearer(show["token"]))
    assert (await patched.json())["disabled"] is True
    await assert_problem(await drop(api, show, voucher), 409, "voucher-disabled")


async def test_a_claim_discounts_its_order_and_the_transfer_once(api, show, ann):
    voucher = await dropped(api, show)
    claim_id = (await claimed(api, show, voucher, ann["token"]))["claim_id"]
    assert await held(api, ann["token"]) == [claim_id]
    order = await ordered(api, show, ann["token"], claim_id)
    cut = LIVE_PRICE * 15 // 100  # 13,500: under the 20,000 cap
    assert order["subtotal"] == LIVE_PRICE and order["discount"] == cut
    assert order["total"] == LIVE_PRICE - cut and order["payment"]["amount"] == LIVE_PRICE - cut
    assert order["voucher"] == {"claim_id": claim_id, "voucher_id": voucher["id"], "code": "GIAM15"}
    assert emv_fields(order["payment"]["qr_payload"])["54"] == str(LIVE_PRICE - cut)
    shown = await (await api.get(f"/api/orders/{order['id']}", headers=bearer(ann["token"]))).json()
    assert shown["voucher"]["claim_id"] == claim_id and shown["total"] == LIVE_PRICE - cut
    assert "GIAM15" in shown["history"][0]["reason"]
    assert await held(api, ann["token"]) == []
    assert (await voucher_row(api, voucher["id"])).used == 1

    again = await checkout(api, show, ann["token"], claim_id)
    await assert_problem(again, 409, "voucher-used")
    paid = await webhook(api, transfer(order["payment"]["code"], LIVE_PRICE - cut))
    assert paid.status == 200
    shown = await (await api.get(f"/api/orders/{order['id']}", headers=bearer(ann["token"]))).json()
    assert shown["status"] == "paid"


async def test_two_checkouts_racing_with_one_claim(api, show, ann):
    voucher = await dropped(api, show, kind="fixed", value=10_000, max_discount=None)
    claim_id = (await claimed(api, show, voucher, ann["token"]))["claim_id"]
    answers = await asyncio.gather(*(checkout(api, show, ann["token"], claim_id) for _ in range(2)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [201, 409]
    loser = next(a for a in answers if a.status == 409)
    assert (await loser.json())["code"] == "voucher-used"
    orders = await api.get("/api/orders", headers=bearer(ann["token"]))
    assert [o["discount"] for o in (await orders.json())["items"]] == [10_000]


async def test_what_a_claim_cannot_be_spent_on(api, show, ann):
    voucher = await dropped(api, show, min_order=100_000)
    claim_id = (await claimed(api, show, voucher, ann["token"]))["claim_id"]
    short = await checkout(api, show, ann["token"], claim_id)
    body = await assert_problem(short, 409, "voucher-min-order")
    assert body["min_order"] == 100_000 and body["subtotal"] == LIVE_PRICE
    bob = await buyer(api, "bob@example.com")
    await assert_problem(
        await checkout(api, show, bob["token"], claim_id), 404, "voucher-claim-not-found"
    )
    other = await seller_on_air(api, "other@example.com")
    await assert_problem(
        await checkout(api, other, ann["token"], claim_id), 409, "voucher-wrong-shop"
    )
    order = await ordered(api, show, ann["token"], claim_id, quantity=2)
    assert order["discount"] == 20_000  # 15% of 180,000 is 27,000: capped


async def test_a_voucher_for_one_session_only(api, show, ann):
    voucher = await dropped(api, show, live_session_id=show["live_id"])
    claim_id = (await claimed(api, show, voucher, ann["token"]))["claim_id"]
    outside = await checkout(api, show, ann["token"], claim_id, in_stream=False)
    await assert_problem(outside, 409, "voucher-wrong-session")
    assert (await ordered(api, show, ann["token"], claim_id))["discount"] == 13_500
    elsewhere = await created(api, show, live_session_id="another-session")
    await assert_problem(await drop(api, show, elsewhere), 409, "voucher-wrong-session")


async def test_cancelling_the_order_gives_the_voucher_back(api, show, ann):
    voucher = await dropped(api, show)
    claim_id = (await claimed(api, show, voucher, ann["token"]))["claim_id"]
    order = await ordered(api, show, ann["token"], claim_id)
    cancelled = await api.post(
        f"/api/orders/{order['id']}/cancel", json={}, headers=bearer(ann["token"])
    )
    assert cancelled.status == 200
    await eventually(lambda: held(api, ann["token"]))
    assert await held(api, ann["token"]) == [claim_id]
    assert (await voucher_row(api, voucher["id"])).used == 0
    again = await ordered(api, show, ann["token"], claim_id)
    assert again["voucher"]["claim_id"] == claim_id and again["discount"] == 13_500


async def test_an_expired_order_gives_the_voucher_back(api, show, ann):
    voucher = await dropped(api, show)
    claim_id = (await claimed(api, show, voucher, ann["token"]))["claim_id"]
    order = await ordered(api, show, ann["token"], claim_id)
    future = datetime.fromisoformat(order["payment_deadline"]) + timedelta(seconds=1)
    assert await api.app[SWEEPER].sweep(now=future) == 1
    await eventually(lambda: held(api, ann["token"]))
    assert await held(api, ann["token"]) == [claim_id]


async def test_claims_are_refused_with_their_reason(api, show, ann):
    voucher = await created(api, show, total=2, per_buyer_limit=1)
    await assert_problem(await claim(api, show, voucher, ann["token"]), 409, "voucher-not-dropped")
    response = await drop(api, show, voucher)
    assert response.status == 201
    await assert_problem(await drop(api, show, voucher), 409, "voucher-already-dropped")
    await assert_problem(await claim(api, show, voucher, None), 401, "unauthenticated")
    await assert_problem(await claim(api, show, voucher, show["token"]), 403, "staff-cannot-claim")
    assert (await claimed(api, show, voucher, ann["token"]))["remaining"] == 1
    await assert_problem(
        await claim(api, show, voucher, ann["token"]), 409, "voucher-limit-reached"
    )
    bob, cat = await buyer(api, "bob@example.com"), await buyer(api, "cat@example.com")
    assert (await claimed(api, show, voucher, bob["token"]))["remaining"] == 0
    listed = await (await api.get(f"/api/live-sessions/{show['live_id']}/vouchers")).json()
    assert [(d["voucher_id"], d["remaining"]) for d in listed["items"]] == [(voucher["id"], 0)]
    await assert_problem(await claim(api, show, voucher, cat["token"]), 409, "voucher-all-claimed")

    later = await dropped(api, show, code="LATER")
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(
            update(Voucher)
            .where(Voucher.id == later["id"])
            .values(claims_close_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await api.app[VOUCHER_GATEKEEPER].resync(voucher_stock(later["id"]))
    await assert_problem(await claim(api, show, later, cat["token"]), 409, "voucher-claims-closed")


async def test_racing_claims_never_pass_the_total(api, show):
    voucher = await dropped(api, show, total=5)
    buyers = [await buyer(api, f"b{i}@example.com") for i in range(8)]
    answers = await asyncio.gather(
        *(claim(api, show, voucher, b["token"]) for b in buyers for _ in range(3))
    )
    won = [a for a in answers if a.status == 201]
    assert len(won) == 5
    assert {(await a.json())["code"] for a in answers if a.status != 201} <= {
        "voucher-all-claimed",
        "voucher-limit-reached",
    }
    assert (await voucher_row(api, voucher["id"])).claimed == 5


async def test_a_drop_reaches_the_room_and_claims_go_over_the_socket(api, show, ann):
    viewer = await open_socket(api, ann["token"])
    guest = await open_socket(api)
    try:
        await viewer.ok("session:join", joining(show["live_id"]))
        await guest.ok("session:join", joining(show["live_id"]))
        voucher = await dropped(api, show, total=3)
        heard = await viewer.wait_for("voucher:dropped")
        assert heard["voucher_id"] == voucher["id"] and heard["code"] == "GIAM15"
        assert heard["remaining"] == 3 and heard["live_session_id"] == show["live_id"]
        assert (await guest.wait_for("voucher:dropped"))["voucher_id"] == voucher["id"]
        payload = {"live_session_id": show["live_id"], "voucher_id": voucher["id"]}
        await guest.refused("voucher:claim", payload, "login-required")
        answer = await viewer.ok("voucher:claim", payload)
        assert answer["claim"]["remaining"] == 2
        assert await held(api, ann["token"]) == [answer["claim"]["claim_id"]]
        counted = await guest.wait_for("voucher:claimed")
        assert counted == {
            "voucher_id": voucher["id"],
            "live_session_id": show["live_id"],
            "claimed": 1,
            "total": 3,
            "remaining": 2,
        }
        await viewer.refused("voucher:claim", payload, "voucher-limit-reached")
    finally:
        await viewer.client.disconnect()
        await guest.client.disconnect()


async def test_a_sessions_voucher_figures_and_timeline(api, show, ann):
    voucher = await dropped(api, show)
    await dropped(api, show, code="SPARE")
    claim_id = (await claimed(api, show, voucher, ann["token"]))["claim_id"]
    await ordered(api, show, ann["token"], claim_id)
    async with api.app[BACKENDS].sessions() as session:
        figures = await report.stats(session, show["live_id"])
        entries = await report.timeline_entries(session, show["live_id"])
    assert figures == {
        "drops": 2,
        "claims": 1,
        "used": 1,
        "sales_with_vouchers": 1,
        "discount_given": 13_500,
    }
    assert [(kind, data["code"]) for _, kind, data in entries] == [
        ("voucher.dropped", "GIAM15"),
        ("voucher.dropped", "SPARE"),
    ]


async def test_withdrawing_a_dropped_voucher_closes_claims_and_spending(api, show, ann):
    voucher = await dropped(api, show)
    claim_id = (await claimed(api, show, voucher, ann["token"]))["claim_id"]
    patched = await api.patch(
        f"/api/vouchers/{voucher['id']}", json={"disabled": True}, headers=bearer(show["token"])
    )
    assert patched.status == 200
    bob = await buyer(api, "bob@example.com")
    await assert_problem(
        await claim(api, show, voucher, bob["token"]), 409, "voucher-claims-closed"
    )
    await assert_problem(await checkout(api, show, ann["token"], claim_id), 409, "voucher-disabled")
    assert await held(api, ann["token"]) == []
