"""A cart line never holds more than can be bought, and every refusal for stock says how
many can be: adding, changing a line, and checking out (cart or named lines, bank
transfer or cash on delivery), on SQLite and PostgreSQL. A line bought from a live
session is capped by what the session still sets aside for the product. The payment a
checkout answers says why its VietQR image is missing when no account is configured."""

from __future__ import annotations

import pytest

from tests.commerce_support import buyer
from tests.hub_support import seller_on_air
from tests.test_auth import assert_problem, bearer

STOCK = 20
LIVE_STOCK = 5


@pytest.fixture
async def shop(api):
    """A product with STOCK units, LIVE_STOCK of them set aside for a live session."""
    return await seller_on_air(api, stock=STOCK, live_stock=LIVE_STOCK)


async def add(api, token, product_id, quantity, live_session_id=None):
    body = {"product_id": product_id, "quantity": quantity}
    if live_session_id:
        body["live_session_id"] = live_session_id
    return await api.post("/api/cart/items", json=body, headers=bearer(token))


async def cart(api, token) -> dict:
    response = await api.get("/api/cart", headers=bearer(token))
    assert response.status == 200, await response.text()
    return await response.json()


async def checkout(api, token, method="bank_transfer", items=None):
    body = {"payment_method": method}
    if items is not None:
        body["items"] = items
    return await api.post("/api/orders/checkout", json=body, headers=bearer(token))


async def refused(response, code: str, available: int) -> dict:
    """The 409 problem, with `available` in the document and in its message."""
    problem = await assert_problem(response, 409, code)
    assert problem["available"] == available
    assert f"{available} can be bought" in problem["detail"]
    return problem


async def test_adding_more_than_the_stock_is_refused_with_what_is_available(api, shop):
    ann = await buyer(api, "ann@example.com")
    product_id = shop["product"]["id"]
    problem = await refused(await add(api, ann["token"], product_id, 500), "out-of-stock", STOCK)
    assert problem["requested"] == 500 and problem["product_id"] == product_id
    assert (await cart(api, ann["token"]))["items"] == []

    assert (await add(api, ann["token"], product_id, 15)).status == 201
    # The line would hold 15 + 10: more than there is.
    problem = await refused(await add(api, ann["token"], product_id, 10), "out-of-stock", STOCK)
    assert problem["requested"] == 25
    (line,) = (await cart(api, ann["token"]))["items"]
    assert (line["quantity"], line["available"], line["in_stock"]) == (15, STOCK, True)


async def test_changing_a_line_above_the_stock_is_refused(api, shop):
    ann = await buyer(api, "ann@example.com")
    assert (await add(api, ann["token"], shop["product"]["id"], 1)).status == 201
    (line,) = (await cart(api, ann["token"]))["items"]
    url = f"/api/cart/items/{line['id']}"
    too_many = await api.patch(url, json={"quantity": STOCK + 1}, headers=bearer(ann["token"]))
    await refused(too_many, "out-of-stock", STOCK)
    all_of_it = await api.patch(url, json={"quantity": STOCK}, headers=bearer(ann["token"]))
    assert all_of_it.status == 200, await all_of_it.text()
    (line,) = (await all_of_it.json())["items"]
    assert line["quantity"] == STOCK


async def test_a_live_line_reports_and_respects_the_sessions_allocation(api, shop):
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    product_id, live_id = shop["product"]["id"], shop["live_id"]
    over = await add(api, ann["token"], product_id, LIVE_STOCK + 1, live_id)
    problem = await refused(over, "out-of-stock", LIVE_STOCK)
    assert problem["requested"] == LIVE_STOCK + 1
    assert (await add(api, ann["token"], product_id, 3, live_id)).status == 201
    (line,) = (await cart(api, ann["token"]))["items"]
    assert (line["available"], line["in_stock"]) == (LIVE_STOCK, True)

    bought = await checkout(
        api,
        bob["token"],
        items=[{"product_id": product_id, "quantity": 3, "live_session_id": live_id}],
    )
    assert bought.status == 201, await bought.text()
    (line,) = (await cart(api, ann["token"]))["items"]
    assert (line["available"], line["in_stock"]) == (LIVE_STOCK - 3, False)
    # Outside the session the product's own stock applies.
    assert (await add(api, ann["token"], product_id, STOCK - 3)).status == 201


async def test_a_cart_checkout_past_the_allocation_says_what_is_left(api, shop):
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    product_id, live_id = shop["product"]["id"], shop["live_id"]
    assert (await add(api, ann["token"], product_id, LIVE_STOCK, live_id)).status == 201
    live_line = [{"product_id": product_id, "quantity": 2, "live_session_id": live_id}]
    assert (await checkout(api, bob["token"], items=live_line)).status == 201
    problem = await refused(
        await checkout(api, ann["token"]), "live-stock-exhausted", LIVE_STOCK - 2
    )
    assert problem["requested"] == LIVE_STOCK and problem["live_session_id"] == live_id


async def test_named_lines_past_the_allocation_say_what_is_left(api, shop):
    ann = await buyer(api, "ann@example.com")
    line = {"product_id": shop["product"]["id"], "quantity": 7, "live_session_id": shop["live_id"]}
    await refused(await checkout(api, ann["token"], items=[line]), "live-stock-exhausted", 5)


@pytest.mark.parametrize("method", ["bank_transfer", "cod"])
async def test_named_lines_past_the_stock_say_what_is_available(api, shop, method):
    """Bank transfer takes the express path on PostgreSQL, cash on delivery the general
    one: both answer the same problem."""
    ann = await buyer(api, "ann@example.com")
    line = {"product_id": shop["product"]["id"], "quantity": STOCK + 1}
    problem = await refused(
        await checkout(api, ann["token"], method, items=[line]), "out-of-stock", STOCK
    )
    assert problem["requested"] == STOCK + 1
    assert problem["variant_id"] == shop["product"]["variants"][0]["id"]


@pytest.mark.parametrize("method", ["bank_transfer", "cod"])
async def test_a_cart_short_of_stock_at_checkout_says_what_is_available(api, shop, method):
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    product_id = shop["product"]["id"]
    assert (await add(api, ann["token"], product_id, 15)).status == 201
    bought = await checkout(api, bob["token"], items=[{"product_id": product_id, "quantity": 8}])
    assert bought.status == 201, await bought.text()
    problem = await refused(await checkout(api, ann["token"], method), "out-of-stock", STOCK - 8)
    assert problem["requested"] == 15 and problem["product_id"] == product_id
    (line,) = (await cart(api, ann["token"]))["items"]
    assert (line["available"], line["in_stock"]) == (STOCK - 8, False)


@pytest.mark.parametrize(
    ("api_settings", "missing"),
    [({}, True), ({"sepay_account": "0123456789", "sepay_bank": "MBBank"}, False)],
    ids=["no-account", "account"],
)
async def test_the_payment_says_why_its_qr_is_missing(api, shop, missing):
    ann = await buyer(api, "ann@example.com")
    line = [{"product_id": shop["product"]["id"], "quantity": 1}]
    response = await checkout(api, ann["token"], items=line)
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    payment = order["payment"]
    if missing:
        assert payment["qr_url"] is None and payment["qr_payload"] is None
        assert payment["account"] is None
        reason = payment["qr_missing_reason"]
        assert "STREAMCART_SEPAY_ACCOUNT" in reason and "STREAMCART_SEPAY_BANK" in reason
    else:
        assert payment["qr_url"].startswith(f"/api/payments/{payment['id']}/qr.svg")
        assert payment["code"] in payment["qr_payload"]
        assert payment["qr_missing_reason"] is None
