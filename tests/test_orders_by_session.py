"""A live session's orders over REST (`GET /api/orders?live_session_id=`), as the studio
lists them: an order counts for every session one of its lines was bought in, the
regular orders for none; pages by keyset like every list; only the shop's team may ask
for a shop's orders. On SQLite and PostgreSQL."""

from __future__ import annotations

from tests.commerce_support import create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer
from tests.test_live_sessions import schedule


async def session_of(api, seller, title: str, products: list[dict]) -> str:
    on_show = [{"product_id": product["id"]} for product in products]
    response = await schedule(
        api, {**seller, "product": products[0]}, title=title, products=on_show
    )
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def buy(api, token: str, *lines: tuple[dict, str | None]) -> str:
    """One order of one unit per (product, session or None) line; its id."""
    items = [
        {"product_id": product["id"], "quantity": 1, "live_session_id": live_session_id}
        for product, live_session_id in lines
    ]
    response = await api.post(
        "/api/orders/checkout",
        json={"payment_method": "bank_transfer", "items": items},
        headers=bearer(token),
    )
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    return order["id"]


async def listed(api, token: str, query: str) -> list[str]:
    """Every order id of the listing, following its cursors, one order a page."""
    ids, cursor = [], ""
    while True:
        response = await api.get(f"/api/orders?limit=1&{query}{cursor}", headers=bearer(token))
        assert response.status == 200, await response.text()
        page = await response.json()
        ids += [order["id"] for order in page["items"]]
        if page["next_cursor"] is None:
            return ids
        cursor = f"&cursor={page['next_cursor']}"


async def test_a_sessions_orders_are_those_with_a_line_bought_in_it(api, ann, bob):
    seller = await seller_with_shop(api, "seller@example.com")
    shop_id = seller["shop"]["id"]
    shirt = await create_product(api, seller["token"], shop_id, name="Áo thun")
    hat = await create_product(api, seller["token"], shop_id, name="Mũ len")
    morning = await session_of(api, seller, "Sáng", [shirt, hat])
    evening = await session_of(api, seller, "Tối", [shirt, hat])

    ann_morning = await buy(api, ann["token"], (shirt, morning))
    bob_evening = await buy(api, bob["token"], (hat, evening))
    regular = await buy(api, ann["token"], (shirt, None))
    both = await buy(api, bob["token"], (shirt, morning), (hat, evening))  # one shop: one order
    shop = f"shop_id={shop_id}"

    assert await listed(api, seller["token"], f"{shop}&live_session_id={morning}") == [
        both,
        ann_morning,
    ]
    assert await listed(api, seller["token"], f"{shop}&live_session_id={evening}") == [
        both,
        bob_evening,
    ]
    assert await listed(api, seller["token"], shop) == [both, regular, bob_evening, ann_morning]
    assert await listed(api, seller["token"], f"{shop}&live_session_id=nobody-sold-here") == []
    # Without shop_id, a buyer's own purchases in the session.
    assert await listed(api, ann["token"], f"live_session_id={morning}") == [ann_morning]
    assert await listed(api, bob["token"], f"live_session_id={morning}") == [both]

    order = await (await api.get(f"/api/orders/{both}", headers=bearer(bob["token"]))).json()
    assert order["live_session_id"] is None  # its lines were bought in two sessions
    assert sorted(i["live_session_id"] for i in order["items"]) == sorted([morning, evening])


async def test_only_the_shops_team_lists_a_sessions_orders(api, ann):
    seller = await seller_with_shop(api, "seller@example.com")
    shirt = await create_product(api, seller["token"], seller["shop"]["id"], name="Áo thun")
    live = await session_of(api, seller, "Sáng", [shirt])
    await buy(api, ann["token"], (shirt, live))
    query = f"/api/orders?shop_id={seller['shop']['id']}&live_session_id={live}"
    other = await seller_with_shop(api, "other@example.com")
    for token in (other["token"], ann["token"]):
        await assert_problem(await api.get(query, headers=bearer(token)), 403, "not-your-shop")
    await assert_problem(await api.get(query), 401, "unauthenticated")
    too_long = query.replace(live, "x" * 65)
    response = await api.get(too_long, headers=bearer(seller["token"]))
    await assert_problem(response, 422, "validation-error")


async def test_the_filter_is_in_the_openapi_document(api):
    spec = await (await api.get("/openapi.json")).json()
    parameters = {p["name"]: p for p in spec["paths"]["/api/orders"]["get"]["parameters"]}
    described = parameters["live_session_id"]
    assert described["in"] == "query" and not described.get("required", False)
    assert "live session" in described["description"]
