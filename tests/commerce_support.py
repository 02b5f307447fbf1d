"""Test helpers for commerce: accounts with a role, shops and products, through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from commerce.accounts.auth import ACCOUNTS
from commerce.accounts.models import Role
from tests.test_auth import PASSWORD, bearer


async def account(api, email: str, role: Role = Role.BUYER) -> dict:
    """A logged-in account of any role: {"token", "user"}. Admins and moderators cannot
    sign up, so every account is made by the service and then logs in over HTTP."""
    await api.app[ACCOUNTS].create_user(email, PASSWORD, email.split("@")[0], role)
    response = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    tokens = await response.json()
    return {"token": tokens["access_token"], "user": tokens["user"]}


async def buyer(api, email: str) -> dict:
    return await account(api, email, Role.BUYER)


async def create_shop(api, token: str, name: str = "Shop", **fields) -> dict:
    response = await api.post("/api/shops", json={"name": name, **fields}, headers=bearer(token))
    assert response.status == 201, await response.text()
    return await response.json()


async def seller_with_shop(api, email: str, shop_name: str | None = None) -> dict:
    """A seller and the (active) shop they own: {"token", "user", "shop"}."""
    seller = await account(api, email, Role.SELLER)
    shop = await create_shop(api, seller["token"], shop_name or f"Shop of {email}")
    return {**seller, "shop": shop}


async def create_product(api, token: str, shop_id: str, **fields) -> dict:
    """A product; without `variants` it is sold as one unit with 10 in stock."""
    body = {"shop_id": shop_id, "name": "Product", "base_price": 100_000, **fields}
    if "variants" not in body:
        body.setdefault("stock", 10)
    response = await api.post("/api/products", json=body, headers=bearer(token))
    assert response.status == 201, await response.text()
    return await response.json()


async def scheduled_show(api, **offer) -> dict:
    """A seller's session scheduled in 5 minutes selling one product (`offer`: its live
    price or stock, if any): {"token", "user", "shop", "product", "live", "key"}, `key`
    being the session's RTMP stream key."""
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(
        api, seller["token"], seller["shop"]["id"], name="Áo khoác", base_price=100_000, stock=5
    )
    response = await api.post(
        "/api/live-sessions",
        json={
            "shop_id": seller["shop"]["id"],
            "title": "Lên sóng",
            "scheduled_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
            "products": [{"product_id": product["id"], **offer}],
        },
        headers=bearer(seller["token"]),
    )
    assert response.status == 201, await response.text()
    live = await response.json()
    return {**seller, "product": product, "live": live, "key": live["stream"]["stream_key"]}
