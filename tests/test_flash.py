"""Flash sales through the REST API, on SQLite and PostgreSQL: starting one, claiming
units (limits, windows, sold out), announcing phases once, and racing claims."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from commerce.catalog.models import Variant
from commerce.orders.models import Order
from live.app import FLASH_GATEKEEPER, build_app
from live.flash.announcer import FlashAnnouncer
from live.flash.service import active_flash
from live.http.system import BACKENDS
from live.sessions.models import FlashClaim, FlashSale
from storage.outbox import OutboxRow
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer
from tests.test_orders import stock

REGULAR = 200_000
FLASH = 99_000


@pytest.fixture
async def shop(api):
    """A seller, a product with 30 in stock and a scheduled session showing it."""
    return await shop_on(api)


async def shop_on(api) -> dict:
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(
        api, seller["token"], seller["shop"]["id"], name="Son môi", base_price=REGULAR, stock=30
    )
    live = await schedule(api, seller, product["id"])
    return {**seller, "product": product, "variant_id": product["variants"][0]["id"], "live": live}


async def schedule(api, seller, *product_ids: str) -> dict:
    response = await api.post(
        "/api/live-sessions",
        json={
            "shop_id": seller["shop"]["id"],
            "title": "Flash sale tối nay",
            "scheduled_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "products": [{"product_id": p} for p in product_ids],
        },
        headers=bearer(seller["token"]),
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def start(api, shop, token=None, **fields):
    body = {
        "product_id": shop["product"]["id"],
        "flash_price": FLASH,
        "quantity": 5,
        "duration_seconds": 60,
        "per_buyer_limit": 1,
        **fields,
    }
    return await api.post(
        f"/api/live-sessions/{shop['live']['id']}/flash-sales",
        json=body,
        headers=bearer(token or shop["token"]),
    )


async def started(api, shop, **fields) -> dict:
    response = await start(api, shop, **fields)
    assert response.status == 201, await response.text()
    return await response.json()


async def claim(api, token, flash, **body):
    headers = bearer(token) if token else {}
    return await api.post(
        f"/api/live-sessions/{flash['live_session_id']}/flash-sales/{flash['id']}/claim",
        json=body,
        headers=headers,
    )


async def events(api, type_: str) -> list[dict]:
    async with api.app[BACKENDS].sessions() as session:
        rows = await session.scalars(
            select(OutboxRow.data).where(OutboxRow.type == type_).order_by(OutboxRow.id)
        )
        return list(rows.all())


async def move_window(api, flash_id: str, **times: timedelta) -> None:
    """Shift `starts_at` / `ends_at` relative to now, instead of waiting for the clock
    (which the app never does itself: its gate learns of it by a resync)."""
    now = datetime.now(UTC)
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(
            update(FlashSale)
            .where(FlashSale.id == flash_id)
            .values({name: now + delta for name, delta in times.items()})
        )
    await api.app[FLASH_GATEKEEPER].resync(flash_id)


async def flash_row(api, flash_id: str) -> FlashSale:
    async with api.app[BACKENDS].sessions() as session:
        return await session.get(FlashSale, flash_id)


async def test_start_now_announces_and_lists(api, shop):
    flash = await started(api, shop, quantity=5, per_buyer_limit=2)
    assert flash["phase"] == "started" and flash["regular_price"] == REGULAR
    assert flash["flash_price"] == FLASH and flash["remaining"] == 5 and flash["sold"] == 0
    assert flash["variant_id"] == shop["variant_id"]
    ends = datetime.fromisoformat(flash["ends_at"]) - datetime.fromisoformat(flash["starts_at"])
    assert ends == timedelta(seconds=60)
    (scheduled,) = await events(api, "flash.scheduled")
    (begun,) = await events(api, "flash.started")
    assert scheduled == begun and scheduled["id"] == flash["id"] and "server_time" in scheduled
    assert (await flash_row(api, flash["id"])).announced == "started"

    listed = await (await api.get(f"/api/live-sessions/{shop['live']['id']}/flash-sales")).json()
    assert [f["id"] for f in listed["items"]] == [flash["id"]]
    snapshot = await active_flash(api.app[BACKENDS].sessions, shop["live"]["id"])
    assert snapshot["id"] == flash["id"] and snapshot["phase"] == "started"


async def test_start_is_validated(api, shop, ann):
    live_id = shop["live"]["id"]
    await assert_problem(
        await start(api, shop, flash_price=REGULAR), 422, "flash-price-not-below-regular"
    )
    await assert_problem(await start(api, shop, duration_seconds=5), 422, "validation-error")
    await assert_problem(await start(api, shop, quantity=31), 409, "not-enough-stock")
    await assert_problem(await start(api, shop, token=ann["token"]), 403, "not-your-shop")
    await assert_problem(await start(api, shop, token="not-a-token"), 401, "invalid-token")

    hidden = await create_product(api, shop["token"], shop["shop"]["id"], name="Kem")
    response = await start(api, shop, product_id=hidden["id"])
    await assert_problem(response, 404, "product-not-on-show")

    sizes = [{"options": {"size": s}, "stock": 3} for s in ("S", "M")]
    tee = await create_product(api, shop["token"], shop["shop"]["id"], name="Áo", variants=sizes)
    await api.post(
        f"/api/live-sessions/{live_id}/products",
        json={"products": [{"product_id": tee["id"]}]},
        headers=bearer(shop["token"]),
    )
    response = await start(api, shop, product_id=tee["id"], quantity=2)
    await assert_problem(response, 422, "variant-required")
    variant_id = tee["variants"][1]["id"]
    flash = await started(api, shop, product_id=tee["id"], variant_id=variant_id, quantity=2)
    assert flash["variant_id"] == variant_id

    await started(api, shop)
    await assert_problem(await start(api, shop), 409, "flash-sale-active")
    await api.post(f"/api/live-sessions/{live_id}/end", headers=bearer(shop["token"]))
    await assert_problem(await start(api, shop), 409, "live-session-ended")


async def test_claim_places_a_pending_order_at_the_flash_price(api, shop, ann):
    flash = await started(api, shop, quantity=5, per_buyer_limit=2)
    response = await claim(api, ann["token"], flash, quantity=2)
    assert response.status == 201, await response.text()
    order = await response.json()
    assert order["status"] == "pending_payment" and order["buyer_id"] == ann["user"]["id"]
    assert order["live_session_id"] == shop["live"]["id"]
    assert order["total"] == 2 * FLASH and order["payment"]["amount"] == 2 * FLASH
    (item,) = order["items"]
    assert item["unit_price"] == FLASH and item["variant_id"] == shop["variant_id"]
    assert await stock(api, shop["variant_id"]) == (30, 2)
    assert (await flash_row(api, flash["id"])).sold == 2
    (claimed,) = await events(api, "flash.claimed")
    assert claimed == {
        "id": flash["id"],
        "live_session_id": shop["live"]["id"],
        "sold": 2,
        "quantity": 5,
        "remaining": 3,
    }

    cod = await claim(
        api, (await buyer(api, "bob@example.com"))["token"], flash, payment_method="cod"
    )
    assert cod.status == 201 and (await cod.json())["status"] == "processing"


async def test_a_claim_without_its_order_is_rolled_back(api, shop, ann):
    """The stock went elsewhere after the start: the order fails, so the claim never was."""
    flash = await started(api, shop, quantity=5)
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(update(Variant).values(reserved=Variant.on_hand))
    await assert_problem(await claim(api, ann["token"], flash), 409, "out-of-stock")
    assert (await flash_row(api, flash["id"])).sold == 0
    async with api.app[BACKENDS].sessions() as session:
        assert await session.scalar(select(func.count()).select_from(FlashClaim)) == 0
    assert await events(api, "flash.claimed") == []


async def test_per_buyer_limit(api, shop, ann):
    flash = await started(api, shop, quantity=5, per_buyer_limit=2)
    await assert_problem(
        await claim(api, ann["token"], flash, quantity=3), 409, "flash-limit-reached"
    )
    assert (await claim(api, ann["token"], flash)).status == 201
    await assert_problem(
        await claim(api, ann["token"], flash, quantity=2), 409, "flash-limit-reached"
    )
    assert (await claim(api, ann["token"], flash)).status == 201
    body = await assert_problem(await claim(api, ann["token"], flash), 409, "flash-limit-reached")
    assert body["per_buyer_limit"] == 2
    assert (await flash_row(api, flash["id"])).sold == 2  # refused claims took nothing
    assert await stock(api, shop["variant_id"]) == (30, 2)


async def test_who_may_claim_and_what(api, shop, ann):
    flash = await started(api, shop)
    await assert_problem(await claim(api, None, flash), 401, "unauthenticated")
    await assert_problem(await claim(api, shop["token"], flash), 403, "staff-cannot-claim")
    await assert_problem(await claim(api, ann["token"], flash, quantity=0), 422, "validation-error")
    unknown = {**flash, "id": "0190c0de-0000-7000-8000-000000000000"}
    await assert_problem(await claim(api, ann["token"], unknown), 404, "flash-sale-not-found")
    other = await schedule(api, shop, shop["product"]["id"])
    elsewhere = {**flash, "live_session_id": other["id"]}
    await assert_problem(await claim(api, ann["token"], elsewhere), 404, "flash-sale-not-found")


async def test_countdown_then_window_then_end(api, shop, ann):
    flash = await started(api, shop, countdown_seconds=30, quantity=3)
    assert flash["phase"] == "scheduled"
    assert await events(api, "flash.started") == []
    body = await assert_problem(await claim(api, ann["token"], flash), 409, "flash-not-started")
    assert datetime.fromisoformat(body["starts_at"]) == datetime.fromisoformat(flash["starts_at"])

    await move_window(api, flash["id"], starts_at=timedelta(seconds=-1))
    assert (await claim(api, ann["token"], flash)).status == 201
    await move_window(api, flash["id"], ends_at=timedelta(seconds=-1))
    await assert_problem(await claim(api, ann["token"], flash), 409, "flash-ended")
    assert await active_flash(api.app[BACKENDS].sessions, shop["live"]["id"]) is None

    await FlashAnnouncer(api.app[BACKENDS].sessions).tick()
    (ended,) = await events(api, "flash.ended")
    assert ended["sold"] == 1 and ended["remaining"] == 2 and ended["phase"] == "ended"


async def test_a_window_missed_while_down_is_announced_as_ended_only(api, shop):
    flash = await started(api, shop, countdown_seconds=30)
    await move_window(
        api, flash["id"], starts_at=timedelta(seconds=-20), ends_at=timedelta(seconds=-10)
    )
    await FlashAnnouncer(api.app[BACKENDS].sessions).tick()
    assert [e["id"] for e in await events(api, "flash.ended")] == [flash["id"]]
    assert await events(api, "flash.started") == []


async def test_ending_the_session_ends_its_flash_sales(api, shop, ann):
    flash = await started(api, shop)
    response = await api.post(
        f"/api/live-sessions/{shop['live']['id']}/end", headers=bearer(shop["token"])
    )
    assert response.status == 200
    await assert_problem(await claim(api, ann["token"], flash), 409, "flash-ended")
    await FlashAnnouncer(api.app[BACKENDS].sessions).tick()
    assert [e["id"] for e in await events(api, "flash.ended")] == [flash["id"]]


async def test_sold_out(api, shop, ann):
    flash = await started(api, shop, quantity=2, per_buyer_limit=2)
    assert (await claim(api, ann["token"], flash, quantity=2)).status == 201
    bob = await buyer(api, "bob@example.com")
    body = await assert_problem(await claim(api, bob["token"], flash), 409, "flash-sold-out")
    assert body["remaining"] == 0
    assert await stock(api, shop["variant_id"]) == (30, 2)


async def test_phases_are_announced_once_by_racing_announcers(api, shop, sql_url):
    flash = await started(api, shop, countdown_seconds=30)
    announcers = [FlashAnnouncer(api.app[BACKENDS].sessions) for _ in range(4)]
    await move_window(api, flash["id"], starts_at=timedelta(seconds=-1))
    await asyncio.gather(*(a.tick() for a in announcers))  # the app's own one races too
    await move_window(api, flash["id"], ends_at=timedelta(seconds=-1))
    await asyncio.gather(*(a.tick() for a in announcers))
    await asyncio.gather(*(a.tick() for a in announcers))
    assert len(await events(api, "flash.started")) == 1
    assert len(await events(api, "flash.ended")) == 1
    assert (await flash_row(api, flash["id"])).announced == "ended"


async def test_the_app_announces_a_countdown_ending(api, shop):
    """The announcer started with the app notices the start within its interval."""
    flash = await started(api, shop, countdown_seconds=1)
    for _ in range(40):
        if await events(api, "flash.started"):
            break
        await asyncio.sleep(0.1)
    (begun,) = await events(api, "flash.started")
    assert begun["id"] == flash["id"] and begun["phase"] == "started"


async def many_buyers(api, count: int, at_once: int = 10) -> list[dict]:
    """Logged-in buyers, `at_once` logging in together: logins in flight count toward
    the per-address throttle (20 by default), as people behind one NAT would."""
    gate = asyncio.Semaphore(at_once)

    async def one(i: int) -> dict:
        async with gate:
            return await buyer(api, f"buyer{i}@example.com")

    return await asyncio.gather(*(one(i) for i in range(count)))


async def assert_exactly_claimed(api, shop, flash, buyers, limit: int) -> None:
    """`quantity` units sold in as many one-unit orders, nobody above the limit."""
    units = flash["quantity"]
    async with api.app[BACKENDS].sessions() as session:
        assert (await session.get(FlashSale, flash["id"])).sold == units
        orders = Counter(
            (await session.scalars(select(Order.buyer_id).where(Order.total == FLASH))).all()
        )
        claims = dict(
            (
                await session.execute(
                    select(FlashClaim.buyer_id, FlashClaim.quantity).where(
                        FlashClaim.flash_sale_id == flash["id"]
                    )
                )
            ).all()
        )
        assert await session.scalar(select(func.count()).select_from(Order)) == units
    assert sum(orders.values()) == units and claims == dict(orders)
    assert max(claims.values()) <= limit
    assert await stock(api, shop["variant_id"]) == (30, units)
    assert {b["user"]["id"] for b in buyers} >= set(claims)


async def test_concurrent_claims_take_exactly_the_quantity(api, shop, sql_url):
    on_postgres = sql_url.startswith("postgresql")
    attempts, buyers = (500, 50) if on_postgres else (100, 20)
    people = await many_buyers(api, buyers)
    flash = await started(api, shop, quantity=20, per_buyer_limit=2)
    responses = await asyncio.gather(
        *(claim(api, people[i % buyers]["token"], flash) for i in range(attempts))
    )
    statuses = Counter(r.status for r in responses)
    assert statuses == {201: 20, 409: attempts - 20}, statuses
    codes = Counter([(await r.json())["code"] for r in responses if r.status == 409])
    assert set(codes) <= {"flash-sold-out", "flash-limit-reached"}
    await assert_exactly_claimed(api, shop, flash, people, limit=2)
    claimed = await events(api, "flash.claimed")
    assert sorted(e["sold"] for e in claimed) == list(range(1, 21))


@pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)
async def test_claims_across_two_processes(aiohttp_client, sql_engine, sql_url, settings_for):
    """Two servers on one PostgreSQL database, 250 claims each, at the same time (each
    with up to 4 x 5 connections: together well under PostgreSQL's 100)."""
    first = await aiohttp_client(build_app(settings_for(sql_url, database_pool_size=5)))
    second = await aiohttp_client(build_app(settings_for(sql_url, database_pool_size=5)))
    shop = await shop_on(first)
    people = await many_buyers(first, 50)
    flash = await started(first, shop, quantity=20, per_buyer_limit=1)
    responses = await asyncio.gather(
        *(
            claim(server, people[i % 50]["token"], flash)
            for i in range(250)
            for server in (first, second)
        )
    )
    statuses = Counter(r.status for r in responses)
    assert statuses == {201: 20, 409: 480}, statuses
    await assert_exactly_claimed(first, shop, flash, people, limit=1)
