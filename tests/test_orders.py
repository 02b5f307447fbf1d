"""Cart -> checkout -> Sepay -> fulfilment through the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from commerce.catalog.models import Variant
from commerce.orders.models import Order, Reservation
from commerce.payments.models import Payment, SepayTransaction
from commerce.payments.vietqr import transfer_payload
from live.app import SWEEPER
from live.http.system import BACKENDS
from storage.outbox import OutboxRow
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer

SEPAY_KEY = "test-sepay-key-0123456789"
# Sepay on, and the sweeper out of the way (tests run its passes themselves).
SEPAY_SETTINGS = {
    "sepay_api_key": SEPAY_KEY,
    "sepay_account": "0123456789",
    "sepay_bank": "MBBank",
    "sweep_interval": 3600.0,
}
sepay_ids = itertools.count(10_000)


@pytest.fixture
def api_settings() -> dict:
    return dict(SEPAY_SETTINGS)


@pytest.fixture
async def shop(api):
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(
        api, seller["token"], seller["shop"]["id"], name="Áo thun", base_price=150_000, stock=5
    )
    return {**seller, "product": product, "variant_id": product["variants"][0]["id"]}


def transfer(content: str, amount: int, *, sepay_id: int | None = None, kind="in", code=None):
    return {
        "id": next(sepay_ids) if sepay_id is None else sepay_id,
        "gateway": "MBBank",
        "transactionDate": "2026-11-25 10:00:00",
        "accountNumber": "0123456789",
        "subAccount": None,
        "code": code,
        "content": content,
        "transferType": kind,
        "transferAmount": amount,
        "accumulated": 10_000_000,
        "referenceCode": "FT123",
        "description": content,
    }


async def webhook(api, body, key=SEPAY_KEY):
    headers = {"Authorization": f"Apikey {key}"} if key is not None else {}
    return await api.post("/api/payments/sepay/webhook", json=body, headers=headers)


async def checkout(api, token, product_id, quantity=1, method="bank_transfer"):
    response = await api.post(
        "/api/orders/checkout",
        json={
            "payment_method": method,
            "items": [{"product_id": product_id, "quantity": quantity}],
        },
        headers=bearer(token),
    )
    return response


async def placed(api, token, product_id, quantity=1) -> dict:
    response = await checkout(api, token, product_id, quantity)
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    return order


async def stock(api, variant_id) -> tuple[int, int]:
    async with api.app[BACKENDS].sessions() as session:
        variant = await session.get(Variant, variant_id)
        return variant.on_hand, variant.reserved


async def get_order(api, token, order_id) -> dict:
    response = await api.get(f"/api/orders/{order_id}", headers=bearer(token))
    assert response.status == 200, await response.text()
    return await response.json()


async def event_types(api) -> list[str]:
    async with api.app[BACKENDS].sessions() as session:
        return list((await session.scalars(select(OutboxRow.type))).all())


async def test_cart_checkout_sepay_paid_then_delivered(api, shop, ann):
    response = await api.post(
        "/api/cart/items",
        json={"product_id": shop["product"]["id"], "quantity": 2},
        headers=bearer(ann["token"]),
    )
    assert response.status == 201, await response.text()
    cart = await response.json()
    assert cart["subtotal"] == 300_000 and cart["changed"] is False

    response = await api.post(
        "/api/orders/checkout",
        json={"payment_method": "bank_transfer"},
        headers=bearer(ann["token"]),
    )
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    payment = order["payment"]
    assert order["status"] == "pending_payment" and order["total"] == 300_000
    assert payment["amount"] == 300_000 and payment["code"].isalnum()
    assert payment["qr_payload"] == transfer_payload(
        "970422", "0123456789", 300_000, payment["code"]
    )
    assert payment["qr_url"].startswith(f"/api/payments/{payment['id']}/qr.svg?v=")
    assert await stock(api, shop["variant_id"]) == (5, 2)
    assert (await (await api.get("/api/cart", headers=bearer(ann["token"]))).json())["items"] == []

    response = await webhook(api, transfer(f"MBVCB.123.{payment['code']}.CT tu ANN", 300_000))
    assert response.status == 200 and await response.json() == {"success": True}
    assert (await get_order(api, ann["token"], order["id"]))["status"] == "paid"
    assert await stock(api, shop["variant_id"]) == (3, 0)

    for step in ("processing", "shipped", "delivered"):
        response = await api.post(
            f"/api/orders/{order['id']}/status",
            json={"status": step},
            headers=bearer(shop["token"]),
        )
        assert response.status == 200, await response.text()
    final = await get_order(api, shop["token"], order["id"])
    assert final["status"] == "delivered"
    assert [h["to_status"] for h in final["history"]] == [
        "pending_payment",
        "paid",
        "processing",
        "shipped",
        "delivered",
    ]
    assert final["history"][1]["actor"] == "system"
    assert final["history"][2]["actor"] == "seller"
    types = await event_types(api)
    for expected in (
        "order.created",
        "order.paid",
        "payment.received",
        "stock.changed",
        "cart.updated",
    ):
        assert expected in types


async def test_cod_checkout_commits_stock_and_skips_payment(api, shop, ann):
    response = await checkout(api, ann["token"], shop["product"]["id"], 2, method="cod")
    (order,) = (await response.json())["orders"]
    assert order["status"] == "processing" and order["payment"] is None
    assert await stock(api, shop["variant_id"]) == (3, 0)


async def test_out_of_stock_orders_nothing(api, shop, ann):
    response = await checkout(api, ann["token"], shop["product"]["id"], 6)
    body = await assert_problem(response, 409, "out-of-stock")
    assert body["variant_id"] == shop["variant_id"]
    assert await stock(api, shop["variant_id"]) == (5, 0)
    async with api.app[BACKENDS].sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_concurrent_checkouts_never_oversell(api, shop, ann, sql_url):
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(update(Variant).values(on_hand=10))
    attempts = 200 if sql_url.startswith("postgresql") else 40
    responses = await asyncio.gather(
        *(checkout(api, ann["token"], shop["product"]["id"]) for _ in range(attempts))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses.count(201) == 10, statuses
    assert statuses.count(409) == attempts - 10
    assert await stock(api, shop["variant_id"]) == (10, 10)
    async with api.app[BACKENDS].sessions() as session:
        held = await session.scalar(select(func.sum(Reservation.quantity)))
        assert held == 10


async def test_expiry_returns_stock_exactly_once(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"], 3)
    assert await stock(api, shop["variant_id"]) == (5, 3)
    sweeper = api.app[SWEEPER]
    future = datetime.fromisoformat(order["payment_deadline"]) + timedelta(seconds=1)
    counts = await asyncio.gather(*(sweeper.sweep(now=future) for _ in range(5)))
    assert sum(counts) == 1
    assert await stock(api, shop["variant_id"]) == (5, 0)
    assert await sweeper.sweep(now=future) == 0
    detail = await get_order(api, ann["token"], order["id"])
    assert detail["status"] == "expired" and detail["payment"]["status"] == "expired"
    assert "order.expired" in await event_types(api)


async def test_expiry_survives_a_restart(aiohttp_client, sql_engine, sql_url, settings_for):
    from live.app import build_app

    first = await aiohttp_client(
        build_app(settings_for(sql_url, payment_window=1, sweep_interval=3600.0))
    )
    seller = await seller_with_shop(first, "seller@example.com")
    product = await create_product(
        first, seller["token"], seller["shop"]["id"], name="Mũ", base_price=90_000, stock=4
    )
    someone = await buyer(first, "bob@example.com")
    order = await placed(first, someone["token"], product["id"], 2)
    await first.close()  # the server goes away with the order still pending

    await asyncio.sleep(1.1)
    second = await aiohttp_client(build_app(settings_for(sql_url, sweep_interval=0.1)))
    variant_id = product["variants"][0]["id"]
    for _ in range(50):
        if await stock(second, variant_id) == (4, 0):
            break
        await asyncio.sleep(0.1)
    assert await stock(second, variant_id) == (4, 0)
    assert (await get_order(second, someone["token"], order["id"]))["status"] == "expired"


async def test_buyer_cancel_releases_and_second_cancel_conflicts(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"], 2)
    url = f"/api/orders/{order['id']}/cancel"
    response = await api.post(url, json={"reason": "changed my mind"}, headers=bearer(ann["token"]))
    assert response.status == 200 and (await response.json())["status"] == "cancelled"
    assert await stock(api, shop["variant_id"]) == (5, 0)
    await assert_problem(
        await api.post(url, json={}, headers=bearer(ann["token"])), 409, "invalid-transition"
    )
    assert await stock(api, shop["variant_id"]) == (5, 0)


async def test_shop_cancels_paid_order_restocks_and_owes_refund(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"], 2)
    await webhook(api, transfer(order["payment"]["code"], 300_000))
    assert await stock(api, shop["variant_id"]) == (3, 0)
    response = await api.post(
        f"/api/orders/{order['id']}/cancel",
        json={"reason": "damaged"},
        headers=bearer(shop["token"]),
    )
    detail = await response.json()
    assert detail["status"] == "cancelled"
    assert detail["payment"]["refund_due"] == 300_000
    assert await stock(api, shop["variant_id"]) == (5, 0)


# --- Sepay webhook -------------------------------------------------------------------------


async def transactions(api) -> list[SepayTransaction]:
    async with api.app[BACKENDS].sessions() as session:
        return list((await session.scalars(select(SepayTransaction))).all())


async def payment_row(api, payment_id) -> Payment:
    async with api.app[BACKENDS].sessions() as session:
        return await session.get(Payment, payment_id)


@pytest.mark.parametrize("key", [None, "wrong-key", "", SEPAY_KEY + "x"])
async def test_webhook_rejects_missing_or_wrong_key(api, shop, ann, key):
    order = await placed(api, ann["token"], shop["product"]["id"])
    response = await webhook(api, transfer(order["payment"]["code"], 150_000), key=key)
    await assert_problem(response, 401, "invalid-webhook-key")
    assert await transactions(api) == []
    assert (await get_order(api, ann["token"], order["id"]))["status"] == "pending_payment"


async def test_webhook_rejects_other_schemes(api):
    for header in (f"Bearer {SEPAY_KEY}", f"apikey{SEPAY_KEY}", SEPAY_KEY):
        response = await api.post(
            "/api/payments/sepay/webhook", json=transfer("x", 1), headers={"Authorization": header}
        )
        await assert_problem(response, 401, "invalid-webhook-key")


async def test_webhook_redelivery_applies_once(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    body = transfer(order["payment"]["code"], 100_000)
    for _ in range(3):
        response = await webhook(api, body)
        assert response.status == 200 and await response.json() == {"success": True}
    payment = await payment_row(api, order["payment"]["id"])
    assert payment.received == 100_000 and payment.status == "partial"
    assert len(await transactions(api)) == 1


async def test_twenty_concurrent_copies_apply_once(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    body = transfer(order["payment"]["code"], 150_000)
    responses = await asyncio.gather(*(webhook(api, body) for _ in range(20)))
    assert [r.status for r in responses] == [200] * 20
    payment = await payment_row(api, order["payment"]["id"])
    assert payment.received == 150_000 and payment.refund_due == 0 and payment.status == "paid"
    assert len(await transactions(api)) == 1
    assert (await event_types(api)).count("order.paid") == 1


async def test_partial_then_rest_pays(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"], 2)
    code = order["payment"]["code"]
    await webhook(api, transfer(code, 100_000))
    assert (await get_order(api, ann["token"], order["id"]))["status"] == "pending_payment"
    assert [t.outcome for t in await transactions(api)] == ["partial"]
    await webhook(api, transfer(code, 200_000))
    detail = await get_order(api, ann["token"], order["id"])
    assert detail["status"] == "paid" and detail["payment"]["received"] == 300_000


async def test_overpayment_pays_and_flags_refund(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    await webhook(api, transfer(order["payment"]["code"], 200_000))
    detail = await get_order(api, ann["token"], order["id"])
    assert detail["status"] == "paid" and detail["payment"]["refund_due"] == 50_000
    (row,) = await transactions(api)
    assert row.outcome == "overpaid" and row.refund_due == 50_000


async def test_late_payment_is_recorded_for_refund(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(
            update(Payment).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await webhook(api, transfer(order["payment"]["code"], 150_000))
    detail = await get_order(api, ann["token"], order["id"])
    assert detail["status"] == "expired" and detail["payment"]["refund_due"] == 150_000
    (row,) = await transactions(api)
    assert row.outcome == "late" and row.refund_due == 150_000
    assert await stock(api, shop["variant_id"]) == (5, 0)


async def test_payment_for_cancelled_order_is_recorded_for_refund(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    await api.post(f"/api/orders/{order['id']}/cancel", json={}, headers=bearer(ann["token"]))
    await webhook(api, transfer(order["payment"]["code"], 150_000))
    (row,) = await transactions(api)
    assert row.outcome == "late" and row.refund_due == 150_000
    assert (await get_order(api, ann["token"], order["id"]))["status"] == "cancelled"


async def test_unknown_code_is_recorded_unmatched(api):
    await webhook(api, transfer("tien hang SCZZZZZZZZZ khong ro", 99_000))
    (row,) = await transactions(api)
    assert row.outcome == "unmatched" and row.payment_id is None and row.refund_due == 99_000
    assert "payment.unmatched" in await event_types(api)


async def test_outgoing_transfer_changes_nothing(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    await webhook(api, transfer(order["payment"]["code"], 150_000, kind="out"))
    (row,) = await transactions(api)
    assert row.outcome == "outgoing"
    assert (await payment_row(api, order["payment"]["id"])).received == 0


@pytest.mark.parametrize(
    "mangle",
    [
        lambda code: code.lower(),
        lambda code: f"{code[:4]}-{code[4:8]}.{code[8:]}",
        lambda code: f"IBFT NGUYEN VAN A chuyen khoan {code.lower()} cam on shop",
        lambda code: f"MBVCB.8216.{code}.CT tu 0123 toi 9876",
        lambda code: " ".join(code),
    ],
)
async def test_mangled_content_still_matches(api, shop, ann, mangle):
    order = await placed(api, ann["token"], shop["product"]["id"])
    await webhook(api, transfer(mangle(order["payment"]["code"]), 150_000))
    assert (await get_order(api, ann["token"], order["id"]))["status"] == "paid"


async def test_sepay_code_field_is_used(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    await webhook(api, transfer("no code in here", 150_000, code=order["payment"]["code"]))
    assert (await get_order(api, ann["token"], order["id"]))["status"] == "paid"


async def test_webhook_with_bad_body_is_a_problem_and_stores_nothing(api):
    response = await webhook(api, {"id": "abc", "transferType": "sideways"})
    await assert_problem(response, 422, "validation-error")
    assert await transactions(api) == []


# --- who may see and touch what ------------------------------------------------------------


async def test_buyers_see_only_their_orders(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    bob = await buyer(api, "bob@example.com")
    await assert_problem(
        await api.get(f"/api/orders/{order['id']}", headers=bearer(bob["token"])),
        404,
        "order-not-found",
    )
    listing = await (await api.get("/api/orders", headers=bearer(bob["token"]))).json()
    assert listing["items"] == []
    mine = await (await api.get("/api/orders", headers=bearer(ann["token"]))).json()
    assert [o["id"] for o in mine["items"]] == [order["id"]]
    response = await api.post(
        f"/api/orders/{order['id']}/cancel", json={}, headers=bearer(bob["token"])
    )
    await assert_problem(response, 404, "order-not-found")


async def test_sellers_see_and_move_only_their_shops_orders(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    other = await seller_with_shop(api, "other@example.com")
    headers = bearer(other["token"])
    await assert_problem(
        await api.get(f"/api/orders/{order['id']}", headers=headers), 404, "order-not-found"
    )
    response = await api.get(f"/api/orders?shop_id={shop['shop']['id']}", headers=headers)
    await assert_problem(response, 403, "not-your-shop")
    response = await api.post(
        f"/api/orders/{order['id']}/status", json={"status": "processing"}, headers=headers
    )
    await assert_problem(response, 404, "order-not-found")
    own = await api.get(f"/api/orders?shop_id={shop['shop']['id']}", headers=bearer(shop["token"]))
    assert [o["id"] for o in (await own.json())["items"]] == [order["id"]]


async def test_buyer_cannot_advance_and_steps_follow_the_state_machine(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    url = f"/api/orders/{order['id']}/status"
    await assert_problem(
        await api.post(url, json={"status": "processing"}, headers=bearer(ann["token"])),
        403,
        "forbidden",
    )
    # not paid yet: the shop cannot start processing
    await assert_problem(
        await api.post(url, json={"status": "processing"}, headers=bearer(shop["token"])),
        409,
        "invalid-transition",
    )
    await assert_problem(
        await api.post(url, json={"status": "refunded"}, headers=bearer(shop["token"])),
        403,
        "forbidden",
    )


async def test_cart_reports_price_and_stock_changes(api, shop, ann):
    await api.post(
        "/api/cart/items",
        json={"product_id": shop["product"]["id"], "quantity": 3},
        headers=bearer(ann["token"]),
    )
    response = await api.patch(
        f"/api/products/{shop['product']['id']}",
        json={"base_price": 120_000, "variants": [{"id": shop["variant_id"], "stock": 2}]},
        headers=bearer(shop["token"]),
    )
    assert response.status == 200, await response.text()
    cart = await (await api.get("/api/cart", headers=bearer(ann["token"]))).json()
    (line,) = cart["items"]
    assert line["unit_price"] == 120_000 and line["price_when_added"] == 150_000
    assert line["price_changed"] is True and line["in_stock"] is False and line["available"] == 2
    assert cart["changed"] is True
