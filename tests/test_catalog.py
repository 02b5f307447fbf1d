"""The catalog through the HTTP API: products, variants, search, stock and archiving."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, update

from commerce.accounts.models import Role
from commerce.carts.models import CartItem
from commerce.catalog.models import Product, Variant
from storage.ids import new_id
from storage.outbox import OutboxRow
from tests.commerce_support import account, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer

SIZES = [
    {"sku": "TEE-S", "options": {"size": "S", "colour": "đỏ"}, "stock": 3},
    {"sku": "TEE-M", "options": {"size": "M", "colour": "đỏ"}, "price": 160_000, "stock": 0},
    {"options": {"size": "L", "colour": "đỏ"}, "stock": 7},
]


@pytest.fixture
async def sam(api):
    return await seller_with_shop(api, "sam@example.com")


@pytest.fixture
async def tim(api):
    return await seller_with_shop(api, "tim@example.com")


async def test_product_without_variants_has_one_default_unit(api, sam):
    product = await create_product(
        api, sam["token"], sam["shop"]["id"], name="Nón lá", base_price=90_000, stock=4
    )
    assert product["status"] == "active" and product["shop_id"] == sam["shop"]["id"]
    [unit] = product["variants"]
    assert unit["is_default"] and unit["options"] == {} and unit["sku"] is None
    assert (unit["price"], unit["stock"], unit["available"]) == (90_000, 4, 4)
    assert "search_text" not in product
    response = await api.get(f"/api/products/{product['id']}")
    assert response.status == 200 and await response.json() == product
    await assert_problem(await api.get("/api/products/nope"), 404, "product-not-found")


async def test_variants_keep_their_order_and_own_prices(api, sam):
    product = await create_product(
        api,
        sam["token"],
        sam["shop"]["id"],
        name="Áo thun",
        description="Cotton 100%",
        category="Thời trang",
        images=["https://cdn.example.com/ao.jpg", "http://img.example.com/ao-2.png"],
        base_price=150_000,
        variants=SIZES,
    )
    variants = product["variants"]
    assert [v["options"]["size"] for v in variants] == ["S", "M", "L"]
    assert [v["price"] for v in variants] == [150_000, 160_000, 150_000]
    assert [v["sku"] for v in variants] == ["TEE-S", "TEE-M", None]
    assert not any(v["is_default"] for v in variants)
    assert product["images"][0] == "https://cdn.example.com/ao.jpg"


VALID = {"shop_id": "set-by-test", "name": "Áo", "base_price": 1000}
INVALID = [  # (fields added to a valid body, where the 422 must point)
    ({"stock": 1, "variants": [{"stock": 1}]}, "body"),
    ({}, "body"),
    ({"stock": -1}, "body.stock"),
    ({"stock": True}, "body.stock"),
    ({"stock": 1, "name": " "}, "body.name"),
    ({"stock": 1, "name": "x" * 201}, "body.name"),
    ({"stock": 1, "description": "x" * 5001}, "body.description"),
    ({"stock": 1, "category": "x" * 81}, "body.category"),
    ({"stock": 1, "base_price": -1}, "body.base_price"),
    ({"stock": 1, "base_price": 10**12 + 1}, "body.base_price"),
    ({"stock": 1, "base_price": "1000"}, "body.base_price"),
    ({"stock": 1, "images": ["javascript:alert(1)"]}, "body.images.0"),
    ({"stock": 1, "images": ["data:image/png;base64,AAAA"]}, "body.images.0"),
    ({"stock": 1, "images": ["https://ok.example/a.png", "//no-scheme"]}, "body.images.1"),
    ({"stock": 1, "images": ["https://x.example/" + "a" * 2048]}, "body.images.0"),
    ({"stock": 1, "images": ["https://x.example/a.png"] * 11}, "body.images"),
    ({"variants": []}, "body.variants"),
    ({"variants": [{"stock": 1}] * 101}, "body.variants"),
    ({"variants": [{"options": {"Size": "M"}, "stock": 1}] * 2}, "body.variants"),
    (
        {
            "variants": [
                {"sku": "A1", "stock": 1},
                {"sku": "a1", "options": {"c": "x"}, "stock": 1},
            ]
        },
        "body.variants",
    ),
    (
        {"variants": [{"options": {str(n): "x" for n in range(6)}, "stock": 1}]},
        "body.variants.0.options",
    ),
    (
        {"variants": [{"options": {"size": "x" * 41}, "stock": 1}]},
        "body.variants.0.options.size",
    ),
    ({"variants": [{"price": -5, "stock": 1}]}, "body.variants.0.price"),
    ({"variants": [{"sku": "s" * 65, "stock": 1}]}, "body.variants.0.sku"),
    ({"stock": 1, "owner": "me"}, "body.owner"),
]


async def test_invalid_products_are_422_with_the_field(api, sam):
    """One seller for every case: accounts are slow to make (argon2 on purpose)."""
    for fields, loc in INVALID:
        body = {**VALID, "shop_id": sam["shop"]["id"], **fields}
        response = await api.post("/api/products", json=body, headers=bearer(sam["token"]))
        problem = await assert_problem(response, 422, "validation-error")
        assert loc in [error["loc"] for error in problem["errors"]], (fields, problem["errors"])


async def test_only_people_of_the_shop_write_its_products(api, sam, tim):
    moderator = await account(api, "mod@example.com", Role.MODERATOR)
    admin = await account(api, "root@example.com", Role.ADMIN)
    customer = await account(api, "bob@example.com")
    response = await api.post(
        f"/api/shops/{sam['shop']['id']}/moderators",
        json={"user_id": moderator["user"]["id"]},
        headers=bearer(sam["token"]),
    )
    assert response.status == 204
    mine = await create_product(api, sam["token"], sam["shop"]["id"], name="Sam's")
    theirs = await create_product(api, tim["token"], tim["shop"]["id"], name="Tim's")

    for caller in (tim, customer):
        response = await api.post(
            "/api/products",
            json={**VALID, "shop_id": sam["shop"]["id"], "stock": 1},
            headers=bearer(caller["token"]),
        )
        await assert_problem(response, 403, "not-your-shop")
    url = f"/api/products/{mine['id']}"
    for caller in (tim, customer):
        rename = await api.patch(url, json={"name": "Mine"}, headers=bearer(caller["token"]))
        await assert_problem(rename, 403, "not-your-shop")
        await assert_problem(
            await api.delete(url, headers=bearer(caller["token"])), 403, "not-your-shop"
        )
    await assert_problem(await api.patch(url, json={"name": "x"}), 401, "unauthenticated")
    response = await api.patch(
        "/api/products/nope", json={"name": "x"}, headers=bearer(sam["token"])
    )
    await assert_problem(response, 404, "product-not-found")

    # A moderator of Sam's shop acts for it, and only for it.
    response = await api.patch(url, json={"name": "By mod"}, headers=bearer(moderator["token"]))
    assert response.status == 200 and (await response.json())["name"] == "By mod"
    response = await api.patch(
        f"/api/products/{theirs['id']}", json={"name": "x"}, headers=bearer(moderator["token"])
    )
    await assert_problem(response, 403, "not-your-shop")
    await create_product(api, moderator["token"], sam["shop"]["id"], name="Added by mod")
    response = await api.patch(url, json={"name": "By admin"}, headers=bearer(admin["token"]))
    assert response.status == 200


async def search(api, **params) -> list[str]:
    response = await api.get("/api/products", params=params)
    assert response.status == 200, await response.text()
    return [product["name"] for product in (await response.json())["items"]]


async def test_search_by_words_shop_and_category(api, sam, tim):
    for name, category in (("Áo thun đỏ", "Thời trang"), ("Quần jean", "Thời trang")):
        await create_product(api, sam["token"], sam["shop"]["id"], name=name, category=category)
    await create_product(
        api, tim["token"], tim["shop"]["id"], name="Nón lá", description="Áo mưa tặng kèm 100%"
    )

    assert await search(api, q="áo") == ["Nón lá", "Áo thun đỏ"]  # description counts
    assert await search(api, q="AO") == ["Nón lá", "Áo thun đỏ"]  # diacritics optional
    assert await search(api, q="thun  ÁO") == ["Áo thun đỏ"]  # every word, any order
    assert await search(api, q="áo quần") == []
    assert await search(api, q="thoi trang") == ["Quần jean", "Áo thun đỏ"]  # category counts
    assert await search(api, shop_id=tim["shop"]["id"]) == ["Nón lá"]
    assert await search(api, category="Thời trang", q="jean") == ["Quần jean"]
    assert await search(api, category="thời trang") == []  # categories match exactly
    # LIKE wildcards typed by a buyer are literal characters, not "match anything".
    assert await search(api, q="%") == ["Nón lá"]
    assert await search(api, q="_") == []
    assert await search(api, q="100_") == []


async def test_pages_visit_every_product_exactly_once(api, sam):
    created = [
        (await create_product(api, sam["token"], sam["shop"]["id"], name=f"P{n}"))["id"]
        for n in range(7)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        page = await (await api.get("/api/products", params=params)).json()
        seen += [product["id"] for product in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created, reverse=True)  # newest first, each once
    for bad in ({"cursor": "not-a-cursor"}, {"limit": "101"}, {"q": "x" * 201}):
        response = await api.get("/api/products", params=bad)
        problem = await assert_problem(response, 422, "validation-error")
        assert problem["errors"][0]["loc"] == f"query.{next(iter(bad))}"


async def test_patch_fields_and_variants(api, sam):
    product = await create_product(
        api, sam["token"], sam["shop"]["id"], name="Áo", base_price=100_000, variants=SIZES
    )
    small, medium, _ = (v["id"] for v in product["variants"])
    response = await api.patch(
        f"/api/products/{product['id']}",
        json={
            "name": "Áo khoác",
            "base_price": 120_000,
            "images": ["https://cdn.example.com/khoac.jpg"],
            "variants": [
                {"id": small, "sku": "JACKET-S", "price": 130_000},
                {"id": medium, "price": None, "sku": None},
            ],
        },
        headers=bearer(sam["token"]),
    )
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert patched["name"] == "Áo khoác" and patched["updated_at"] > product["updated_at"]
    assert [(v["sku"], v["price"]) for v in patched["variants"]] == [
        ("JACKET-S", 130_000),
        (None, 120_000),  # no own price: the new base price
        (None, 120_000),
    ]
    assert await search(api, q="khoac") == ["Áo khoác"]

    for body, status, code in (
        ({"name": None}, 422, "validation-error"),
        ({"variants": [{"id": small, "stock": None}]}, 422, "validation-error"),
        ({"variants": [{"id": "nope", "stock": 1}]}, 422, "unknown-variant"),
        ({"variants": [{"id": medium, "sku": "jacket-s"}]}, 409, "duplicate-sku"),
        ({"status": "deleted"}, 422, "validation-error"),
    ):
        response = await api.patch(
            f"/api/products/{product['id']}", json=body, headers=bearer(sam["token"])
        )
        await assert_problem(response, status, code)


async def test_stock_edits_respect_reservations_and_emit_events(api, sam, sql_engine):
    product = await create_product(api, sam["token"], sam["shop"]["id"], stock=10)
    variant_id = product["variants"][0]["id"]
    async with sql_engine.begin() as conn:  # an order holds 4 units
        await conn.execute(update(Variant).where(Variant.id == variant_id).values(reserved=4))
    url = f"/api/products/{product['id']}"

    response = await api.patch(
        url, json={"variants": [{"id": variant_id, "stock": 3}]}, headers=bearer(sam["token"])
    )
    problem = await assert_problem(response, 409, "stock-below-reserved")
    assert problem["variant_id"] == variant_id and variant_id in problem["detail"]

    response = await api.patch(
        url, json={"variants": [{"id": variant_id, "stock": 6}]}, headers=bearer(sam["token"])
    )
    assert response.status == 200
    [unit] = (await response.json())["variants"]
    assert (unit["stock"], unit["available"]) == (6, 2)
    async with sql_engine.connect() as conn:
        events = (
            await conn.execute(select(OutboxRow.data).where(OutboxRow.type == "stock.changed"))
        ).all()
    assert [row.data for row in events] == [
        {
            "product_id": product["id"],
            "variant_id": variant_id,
            "shop_id": sam["shop"]["id"],
            "available": 2,
        }
    ]


async def test_archived_products_leave_the_public_list(api, sam, tim):
    product = await create_product(api, sam["token"], sam["shop"]["id"], name="Old")
    url = f"/api/products/{product['id']}"
    response = await api.patch(url, json={"status": "archived"}, headers=bearer(sam["token"]))
    archived = await response.json()
    assert archived["status"] == "archived" and archived["variants"][0]["archived"]
    assert await search(api) == []
    assert (await (await api.get(url)).json())["status"] == "archived"

    own = {"shop_id": sam["shop"]["id"], "include_archived": "true"}
    response = await api.get("/api/products", params=own, headers=bearer(sam["token"]))
    assert [p["id"] for p in (await response.json())["items"]] == [product["id"]]
    await assert_problem(await api.get("/api/products", params=own), 401, "unauthenticated")
    response = await api.get("/api/products", params=own, headers=bearer(tim["token"]))
    await assert_problem(response, 403, "not-your-shop")
    response = await api.get(
        "/api/products", params={"include_archived": "true"}, headers=bearer(sam["token"])
    )
    await assert_problem(response, 422, "validation-error")

    response = await api.patch(url, json={"status": "active"}, headers=bearer(sam["token"]))
    assert not (await response.json())["variants"][0]["archived"]
    assert await search(api) == ["Old"]


async def test_delete_archives_what_a_cart_refers_to(api, sam, sql_engine):
    customer = await account(api, "bob@example.com")
    kept = await create_product(api, sam["token"], sam["shop"]["id"], name="In a cart")
    gone = await create_product(api, sam["token"], sam["shop"]["id"], name="Unwanted")
    async with sql_engine.begin() as conn:
        await conn.execute(
            insert(CartItem).values(
                id=new_id(),
                user_id=customer["user"]["id"],
                product_id=kept["id"],
                variant_id=kept["variants"][0]["id"],
                quantity=1,
                price_when_added=kept["base_price"],
                added_at=datetime.now(UTC),
            )
        )

    response = await api.delete(f"/api/products/{kept['id']}", headers=bearer(sam["token"]))
    assert response.status == 200
    assert (await response.json())["status"] == "archived"
    assert (await (await api.get(f"/api/products/{kept['id']}")).json())["status"] == "archived"

    response = await api.delete(f"/api/products/{gone['id']}", headers=bearer(sam["token"]))
    assert response.status == 204
    await assert_problem(await api.get(f"/api/products/{gone['id']}"), 404, "product-not-found")
    async with sql_engine.connect() as conn:
        assert (await conn.execute(select(Product.id))).scalars().all() == [kept["id"]]
        remaining = (await conn.execute(select(Variant.product_id))).scalars().all()
        assert remaining == [kept["id"]]
