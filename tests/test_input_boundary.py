"""The declared routes' input boundary, on SQLite and PostgreSQL: NUL is refused with 422
in every body field, query parameter and path parameter (PostgreSQL cannot store it, so it
used to end in 500s, some without login); integral JSON numbers are integers."""

from __future__ import annotations

import pytest

from commerce.accounts.models import Role
from tests.commerce_support import account, create_product, seller_with_shop
from tests.test_auth import PASSWORD, assert_problem, bearer

SEPAY_KEY = "input-boundary-key"
NUL_PATH_VALUE = "a%00b"


@pytest.fixture
def api_settings() -> dict:
    return {"sepay_api_key": SEPAY_KEY}


async def assert_nul_refused(response, loc: str) -> None:
    problem = await assert_problem(response, 422, "validation-error")
    assert loc in [error["loc"] for error in problem["errors"]], problem
    assert {error["type"] for error in problem["errors"]} == {"string_nul"}


async def test_nul_in_a_query_parameter_is_422_without_login(api):
    await assert_nul_refused(await api.get("/api/products?q=a%00b"), "query.q")
    await assert_nul_refused(await api.get("/api/live-sessions?shop_id=%00"), "query.shop_id")


async def test_nul_in_a_path_parameter_is_422_without_login(api):
    await assert_nul_refused(await api.get("/api/shops/a%00b"), "path.id")
    await assert_nul_refused(await api.get("/api/products/a%00b"), "path.id")


async def test_nul_in_a_display_name_is_422(api):
    body = {"email": "nul@example.com", "password": PASSWORD, "display_name": "A\x00n"}
    await assert_nul_refused(await api.post("/api/auth/register", json=body), "body.display_name")


async def test_nul_in_product_fields_and_keys_is_422(api):
    seller = await seller_with_shop(api, "nul-seller@example.com")
    body = {"shop_id": seller["shop"]["id"], "name": "Áo\x00", "base_price": 1, "stock": 1}
    response = await api.post("/api/products", json=body, headers=bearer(seller["token"]))
    await assert_nul_refused(response, "body.name")
    variants = [{"options": {"size\x00": "M"}, "stock": 1}]
    body = {**body, "name": "Áo", "stock": None, "variants": variants}
    response = await api.post("/api/products", json=body, headers=bearer(seller["token"]))
    await assert_nul_refused(response, "body.variants.0.options.size\\u0000")


async def test_nul_in_a_checkout_note_is_422(api):
    buyer = await account(api, "nul-buyer@example.com")
    body = {"payment_method": "cod", "note": "giao giờ hành chính\x00"}
    response = await api.post("/api/orders/checkout", json=body, headers=bearer(buyer["token"]))
    await assert_nul_refused(response, "body.note")


async def test_every_path_parameter_of_every_route_refuses_nul(api):
    """Generic, not per field: each documented route, each of its path parameters."""
    admin = await account(api, "nul-admin@example.com", Role.ADMIN)
    headers = {**bearer(admin["token"]), "Content-Type": "application/json"}
    spec = await (await api.get("/openapi.json")).json()
    checked = 0
    for template, operations in spec["paths"].items():
        for method, doc in operations.items():
            names = [p["name"] for p in doc["parameters"] if p["in"] == "path"]
            for name in names:
                path = template
                for other in names:
                    path = path.replace(f"{{{other}}}", NUL_PATH_VALUE if other == name else "x")
                response = await api.request(method.upper(), path, headers=headers, data=b"{}")
                await assert_nul_refused(response, f"path.{name}")
                checked += 1
    assert checked > 20


@pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)
async def test_the_sepay_webhook_opts_out(api):
    """Sepay's transfer content may carry NUL: the webhook takes it and cleans it itself."""
    body = {"id": 1, "content": "DH123\x00", "transferType": "in", "transferAmount": 1000}
    response = await api.post(
        "/api/payments/sepay/webhook", json=body, headers={"Authorization": f"Apikey {SEPAY_KEY}"}
    )
    assert response.status == 200, await response.text()


async def test_integral_numbers_are_integers(api):
    """JSON Schema's `integer` admits 1.0, so the strict models take it as 1."""
    seller = await seller_with_shop(api, "integral@example.com")
    product = await create_product(
        api, seller["token"], seller["shop"]["id"], base_price=150_000.0, stock=2e1
    )
    assert product["base_price"] == 150_000 and product["variants"][0]["stock"] == 20
    body = {"shop_id": seller["shop"]["id"], "name": "P", "base_price": 1.5, "stock": 1}
    response = await api.post("/api/products", json=body, headers=bearer(seller["token"]))
    problem = await assert_problem(response, 422, "validation-error")
    assert [error["loc"] for error in problem["errors"]] == ["body.base_price"]
