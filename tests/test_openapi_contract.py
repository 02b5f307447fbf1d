"""The OpenAPI document against the running app: every status the route wrapper answers
is documented for every operation (found by asking, not by reading the generator), and
the rules clients need (stock or variants, the cursor, Sepay's key) are in the schema."""

from __future__ import annotations

import re

import jsonschema_rs
import pytest

from commerce.accounts.models import Role
from tests.commerce_support import account, create_product, create_shop, seller_with_shop
from tests.test_auth import assert_problem, bearer

pytestmark = pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)

SEPAY_KEY = "contract-key"
MAX_BODY = 4096
JSON = {"Content-Type": "application/json"}
# Requests the wrapper answers before any handler runs, for an operation with a JSON body.
BODY_PROBES = {
    "wrong content type": (b"x", {"Content-Type": "text/plain"}),
    "malformed JSON": (b"{", JSON),
    "not an object": (b"[]", JSON),
    "too large": (b'"' + b"x" * MAX_BODY + b'"', JSON),
}


@pytest.fixture
def api_settings() -> dict:
    return {"sepay_api_key": SEPAY_KEY, "max_body_bytes": MAX_BODY}


async def spec_of(api) -> dict:
    return await (await api.get("/openapi.json")).json()


def operations(spec: dict):
    for template, methods in spec["paths"].items():
        for method, doc in methods.items():
            yield method.upper(), template, doc


def filled(template: str, doc: dict, value: str = "x") -> str:
    for param in doc["parameters"]:
        if param["in"] == "path":
            template = template.replace(f"{{{param['name']}}}", value)
    return template


async def test_every_status_the_wrapper_answers_is_documented(api):
    spec = await spec_of(api)
    admin = await account(api, "contract-admin@example.com", Role.ADMIN)
    credentials = {
        "bearerAuth": bearer(admin["token"]),
        "sepayApiKey": {"Authorization": f"Apikey {SEPAY_KEY}"},
        "streamKey": {"Authorization": "Bearer not-a-stream-key"},
    }
    undocumented = []
    for method, template, doc in operations(spec):
        path = filled(template, doc)
        probes: dict[str, tuple[str, bytes | None, dict]] = {}
        auth: dict = {}
        for requirement in doc.get("security", []):
            (scheme,) = requirement
            auth = credentials[scheme]
            probes["no credentials"] = (path, b"{}", JSON)
        if any(p["in"] == "path" for p in doc["parameters"]):
            probes["NUL in the path"] = (filled(template, doc, "%00"), b"{}", {**auth, **JSON})
        query = [p["name"] for p in doc["parameters"] if p["in"] == "query"]
        if query:
            probes["NUL in the query"] = (f"{path}?{query[0]}=%00", None, auth)
        if "application/json" in doc.get("requestBody", {}).get("content", {}):
            for name, (data, headers) in BODY_PROBES.items():
                probes[name] = (path, data, {**auth, **headers})
        for name, (url, data, headers) in probes.items():
            response = await api.request(method, url, data=data, headers=headers)
            if str(response.status) not in doc["responses"]:
                undocumented.append(f"{method} {template} ({name}): {response.status}")
    assert not undocumented, "\n".join(undocumented)


async def test_deleting_a_product_answers_a_documented_204(api):
    seller = await seller_with_shop(api, "contract-seller@example.com")
    product = await create_product(api, seller["token"], seller["shop"]["id"])
    response = await api.delete(f"/api/products/{product['id']}", headers=bearer(seller["token"]))
    assert response.status == 204, await response.text()
    spec = await spec_of(api)
    assert "204" in spec["paths"]["/api/products/{id}"]["delete"]["responses"]


async def test_orders_of_an_unknown_shop_are_a_documented_404(api):
    seller = await seller_with_shop(api, "contract-orders@example.com")
    response = await api.get("/api/orders?shop_id=nope", headers=bearer(seller["token"]))
    assert response.status == 404, await response.text()
    assert "404" in (await spec_of(api))["paths"]["/api/orders"]["get"]["responses"]


async def test_a_method_a_path_does_not_declare_is_405(api):
    response = await api.delete("/api/products")
    await assert_problem(response, 405, "method-not-allowed")
    assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_the_sepay_webhook_declares_its_api_key(api):
    spec = await spec_of(api)
    scheme = spec["components"]["securitySchemes"]["sepayApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    webhook = spec["paths"]["/api/payments/sepay/webhook"]["post"]
    assert webhook["security"] == [{"sepayApiKey": []}]
    assert "401" in webhook["responses"]


async def test_the_product_schema_says_stock_or_variants(api):
    spec = await spec_of(api)
    validator = jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/ProductIn", "components": spec["components"]}
    )
    base = {"shop_id": "s", "name": "Áo", "base_price": 1}
    variants = [{"options": {"size": "M"}, "stock": 1}]
    assert validator.is_valid({**base, "stock": 1})
    assert validator.is_valid({**base, "variants": variants})
    assert validator.is_valid({**base, "stock": None, "variants": variants})
    assert not validator.is_valid(base)
    assert not validator.is_valid({**base, "stock": 1, "variants": variants})


async def test_the_cursor_format_is_documented(api):
    seller = await seller_with_shop(api, "contract-cursor@example.com")
    for name in ("Second", "Third"):
        await create_shop(api, seller["token"], name)
    page = await (await api.get("/api/shops?limit=1")).json()
    spec = await spec_of(api)
    cursors = [
        param["schema"]
        for _, _, doc in operations(spec)
        for param in doc["parameters"]
        if param["name"] == "cursor"
    ]
    assert len(cursors) >= 4  # shops, products, orders, live sessions, flash sales
    for schema in cursors:
        (text,) = [option for option in schema["anyOf"] if option["type"] == "string"]
        assert re.fullmatch(text["pattern"], page["next_cursor"])
        assert not re.fullmatch(text["pattern"], "not-a-cursor")
    response = await api.get("/api/shops?cursor=not-a-cursor")
    await assert_problem(response, 422, "validation-error")
