"""Shops through the HTTP API: creation, approval, moderators and who may do what."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from commerce.accounts.models import Role
from commerce.accounts.tokens import Principal
from commerce.shops.access import shop_role
from commerce.shops.models import ShopModerator
from live.http.system import BACKENDS
from tests.commerce_support import account, create_product, create_shop, seller_with_shop
from tests.test_auth import assert_problem, bearer


@pytest.fixture
async def approval_api(aiohttp_client, sql_engine, sql_url, settings_for):
    """The app with STREAMCART_SHOP_APPROVAL_REQUIRED on."""
    from live.app import build_app

    return await aiohttp_client(build_app(settings_for(sql_url, shop_approval_required=True)))


async def test_seller_opens_shops_with_folded_unique_slugs(api):
    seller = await account(api, "sam@example.com", Role.SELLER)
    first = await create_shop(api, seller["token"], "  Áo Đẹp ", description="Hàng Việt")
    assert first["name"] == "Áo Đẹp" and first["slug"] == "ao-dep"
    assert first["status"] == "active" and first["owner_id"] == seller["user"]["id"]
    # A seller may own several shops; names that fold alike get numbered slugs.
    second = await create_shop(api, seller["token"], "ÁO ĐẸP!")
    third = await create_shop(api, seller["token"], "áo-đẹp")
    assert (second["slug"], third["slug"]) == ("ao-dep-2", "ao-dep-3")
    assert (await create_shop(api, seller["token"], "★★★"))["slug"] == "shop"

    response = await api.get(f"/api/shops/{first['id']}")
    assert response.status == 200 and (await response.json()) == first


async def test_only_sellers_and_admins_open_shops(api):
    customer = await account(api, "bob@example.com")
    moderator = await account(api, "mod@example.com", Role.MODERATOR)
    admin = await account(api, "root@example.com", Role.ADMIN)
    for caller in (customer, moderator):
        response = await api.post("/api/shops", json={"name": "X"}, headers=bearer(caller["token"]))
        await assert_problem(response, 403, "forbidden")
    await assert_problem(await api.post("/api/shops", json={"name": "X"}), 401, "unauthenticated")
    assert (await create_shop(api, admin["token"], "House"))["owner_id"] == admin["user"]["id"]


async def test_invalid_shops_are_422_with_the_field(api):
    seller = await account(api, "sam@example.com", Role.SELLER)
    for body, loc in (
        ({"name": "   "}, "body.name"),
        ({"name": "x" * 121}, "body.name"),
        ({"name": "Shop", "description": "d" * 2001}, "body.description"),
        ({"name": 42}, "body.name"),
        ({}, "body.name"),
        ({"name": "Shop", "status": "active"}, "body.status"),
    ):
        response = await api.post("/api/shops", json=body, headers=bearer(seller["token"]))
        problem = await assert_problem(response, 422, "validation-error")
        assert loc in [error["loc"] for error in problem["errors"]], body


async def test_shops_list_in_pages_newest_first(api):
    seller = await account(api, "sam@example.com", Role.SELLER)
    created = [(await create_shop(api, seller["token"], f"Shop {n}"))["id"] for n in range(5)]
    seen, cursor = [], None
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = await (await api.get("/api/shops", params=query)).json()
        assert len(page["items"]) <= 2
        seen += [shop["id"] for shop in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created, reverse=True)
    for bad in ({"cursor": "bm90LWEtdXVpZA"}, {"cursor": "%%%"}, {"limit": "0"}, {"x": "1"}):
        problem = await assert_problem(
            await api.get("/api/shops", params=bad), 422, "validation-error"
        )
        assert problem["errors"][0]["loc"] == f"query.{next(iter(bad))}"


async def test_approval_flow(approval_api):
    api = approval_api
    seller = await account(api, "sam@example.com", Role.SELLER)
    admin = await account(api, "root@example.com", Role.ADMIN)
    shop = await create_shop(api, seller["token"], "Nón Lá")
    assert shop["status"] == "pending" and shop["approved_at"] is None
    url = f"/api/shops/{shop['id']}"

    # Pending shops are hidden from the public but not from the people running them.
    assert (await (await api.get("/api/shops")).json())["items"] == []
    await assert_problem(await api.get(url), 404, "shop-not-found")
    outsider = await account(api, "bob@example.com")
    await assert_problem(
        await api.get(url, headers=bearer(outsider["token"])), 404, "shop-not-found"
    )
    for caller in (seller, admin):
        response = await api.get(url, headers=bearer(caller["token"]))
        assert response.status == 200 and (await response.json())["status"] == "pending"

    mine = await api.get("/api/shops/mine", headers=bearer(seller["token"]))
    assert [s["id"] for s in (await mine.json())["items"]] == [shop["id"]]  # pending, yet his
    mine = await api.get("/api/shops/mine", headers=bearer(outsider["token"]))
    assert (await mine.json())["items"] == []

    response = await api.post(
        "/api/products",
        json={"shop_id": shop["id"], "name": "Nón", "base_price": 50_000, "stock": 1},
        headers=bearer(seller["token"]),
    )
    await assert_problem(response, 409, "shop-not-active")

    await assert_problem(
        await api.post(f"{url}/approve", headers=bearer(seller["token"])), 403, "forbidden"
    )
    response = await api.post(f"{url}/approve", headers=bearer(admin["token"]))
    assert response.status == 200
    approved = await response.json()
    assert approved["status"] == "active" and approved["approved_at"] is not None
    await assert_problem(
        await api.post(f"{url}/approve", headers=bearer(admin["token"])), 409, "shop-not-pending"
    )
    await assert_problem(
        await api.post("/api/shops/nope/approve", headers=bearer(admin["token"])),
        404,
        "shop-not-found",
    )

    assert [s["id"] for s in (await (await api.get("/api/shops")).json())["items"]] == [shop["id"]]
    await create_product(api, seller["token"], shop["id"])
    # An admin's own shop needs nobody's approval.
    assert (await create_shop(api, admin["token"], "House"))["status"] == "active"


async def test_owner_manages_moderators(api, sql_engine):
    owner = await seller_with_shop(api, "sam@example.com")
    other = await seller_with_shop(api, "tim@example.com")
    moderator = await account(api, "mod@example.com", Role.MODERATOR)
    customer = await account(api, "bob@example.com")
    url = f"/api/shops/{owner['shop']['id']}/moderators"
    add = {"user_id": moderator["user"]["id"]}

    for _ in range(2):  # idempotent
        response = await api.post(url, json=add, headers=bearer(owner["token"]))
        assert response.status == 204
    async with sql_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(ShopModerator)) == 1

    async def mine(caller: dict) -> list[str]:
        response = await api.get("/api/shops/mine", headers=bearer(caller["token"]))
        assert response.status == 200, await response.text()
        return [shop["id"] for shop in (await response.json())["items"]]

    assert await mine(moderator) == [owner["shop"]["id"]]  # the shop a moderator acts for
    assert await mine(other) == [other["shop"]["id"]]
    await assert_problem(await api.get("/api/shops/mine"), 401, "unauthenticated")

    for caller in (other, moderator):  # moderators cannot appoint moderators
        response = await api.post(url, json=add, headers=bearer(caller["token"]))
        await assert_problem(response, 403, "not-your-shop")
    response = await api.post(
        url, json={"user_id": customer["user"]["id"]}, headers=bearer(owner["token"])
    )
    await assert_problem(response, 422, "not-a-moderator")
    response = await api.post(url, json={"user_id": "nobody"}, headers=bearer(owner["token"]))
    await assert_problem(response, 422, "unknown-user")
    response = await api.post(
        "/api/shops/nope/moderators", json=add, headers=bearer(owner["token"])
    )
    await assert_problem(response, 404, "shop-not-found")

    remove = f"{url}/{moderator['user']['id']}"
    await assert_problem(
        await api.delete(remove, headers=bearer(other["token"])), 403, "not-your-shop"
    )
    for _ in range(2):  # idempotent
        assert (await api.delete(remove, headers=bearer(owner["token"]))).status == 204
    assert await mine(moderator) == []
    async with sql_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(ShopModerator)) == 0


async def test_shop_role_names_each_kind_of_access(api):
    owner = await seller_with_shop(api, "sam@example.com")
    moderator = await account(api, "mod@example.com", Role.MODERATOR)
    stranger = await account(api, "tim@example.com", Role.SELLER)
    admin = await account(api, "root@example.com", Role.ADMIN)
    shop_id = owner["shop"]["id"]
    response = await api.post(
        f"/api/shops/{shop_id}/moderators",
        json={"user_id": moderator["user"]["id"]},
        headers=bearer(owner["token"]),
    )
    assert response.status == 204

    def principal(who: dict) -> Principal:
        return Principal(who["user"]["id"], who["user"]["role"], "jti", datetime.now(UTC))

    async with api.app[BACKENDS].sessions() as session:
        roles = [
            await shop_role(session, principal(who), shop_id)
            for who in (owner, moderator, stranger, admin)
        ]
        assert roles == ["owner", "moderator", None, "admin"]
        assert await shop_role(session, principal(admin), "no-such-shop") is None
