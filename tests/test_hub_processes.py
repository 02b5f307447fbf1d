"""Two real `streamcart serve` processes, A and B, on one PostgreSQL database and one
Redis: a Socket.IO client on A sees what happens on B (emits cross through
python-socketio's Redis manager, viewers are counted in Redis), and flash-sale claims
sent to both at once never sell more than the quantity or pass the per-buyer limit."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from commerce.catalog.models import Variant
from commerce.orders.models import Order, OrderItem
from live.sessions.models import FlashClaim
from tests.backends import REDIS_URL, require
from tests.hub_support import one_stream_on_two
from tests.server_process import ServerApi, serving
from tests.test_flash import FLASH, claim, many_buyers, shop_on, started

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]

BUYERS = 100
ATTEMPTS_PER_BUYER = 5
UNITS = 20
PER_BUYER_LIMIT = 2
REFUSALS = {"flash-sold-out", "flash-limit-reached"}


@pytest.fixture
async def servers(sql_engine, sql_url, tmp_path) -> AsyncIterator[tuple[ServerApi, ...]]:
    """Servers A and B on the migrated, emptied test database and on Redis, sharing the
    JWT secret (a token from one is good on the other) and hashing passwords cheaply."""
    settings = {
        "STREAMCART_DATABASE_URL": sql_url,
        "STREAMCART_DATABASE_POOL_SIZE": "5",
        "STREAMCART_REDIS_URL": require(REDIS_URL, "Redis"),
        "STREAMCART_REDIS_PREFIX": f"test-{secrets.token_hex(4)}:",  # keys and channels
        "STREAMCART_JWT_SECRET": secrets.token_urlsafe(32),
        "STREAMCART_PASSWORD_TIME_COST": "1",
        "STREAMCART_PASSWORD_MEMORY_KIB": "1024",
        "STREAMCART_SHUTDOWN_TIMEOUT": "2",
    }
    async with serving(tmp_path, ("a", "b"), settings) as pair:
        yield pair


async def test_a_client_on_one_process_sees_what_happens_on_the_other(servers, opened):
    a, b = servers
    shared = await one_stream_on_two(a, b, opened)
    viewer_a, seller_b, guest_b = shared.viewer_a, shared.seller_b, shared.guest_b

    await guest_b.client.disconnect()
    await viewer_a.wait_for("viewers:count", lambda c: c["viewers"] == 2)
    assert viewer_a.received("error") == seller_b.received("error") == []


async def test_claims_on_both_processes_take_exactly_the_quantity(servers, sql_engine):
    a, b = servers
    shop = await shop_on(a)
    people = await many_buyers(b, BUYERS)
    flash = await started(
        a, shop, quantity=UNITS, per_buyer_limit=PER_BUYER_LIMIT, duration_seconds=600
    )
    # Each buyer's attempts alternate between the processes: 3 on A, 2 on B.
    attempts = [
        (servers[attempt % 2], person) for attempt in range(ATTEMPTS_PER_BUYER) for person in people
    ]
    responses = await asyncio.gather(
        *(claim(server, person["token"], flash) for server, person in attempts)
    )

    statuses = Counter(r.status for r in responses)
    explained = "\n".join(s.server.explain(f"claims answered {statuses}") for s in servers)
    assert statuses == {201: UNITS, 409: len(attempts) - UNITS}, explained
    for response in responses:
        if response.status == 409:
            assert response.content_type == "application/problem+json"
            problem = await response.json()
            assert problem["code"] in REFUSALS and problem["title"] and problem["detail"], problem
    orders = [await r.json() for r in responses if r.status == 201]
    assert {o["status"] for o in orders} == {"pending_payment"}
    assert {o["total"] for o in orders} == {FLASH}

    listed = await (await b.get(f"/api/live-sessions/{shop['live']['id']}/flash-sales")).json()
    (after,) = listed["items"]
    assert after["sold"] == UNITS and after["remaining"] == 0

    stored = await stored_outcome(sql_engine, flash)
    assert stored["units"] == UNITS and stored["reserved"] == UNITS
    assert stored["orders_by_buyer"] == Counter(o["buyer_id"] for o in orders)
    # One unit per claim: each buyer's orders are what the per-buyer limit counted.
    assert stored["claims"] == stored["orders_by_buyer"]
    assert max(stored["claims"].values()) <= PER_BUYER_LIMIT
    assert set(stored["claims"]) <= {p["user"]["id"] for p in people}

    for server in servers:
        ready = await server.get("/readyz")
        assert ready.status == 200, server.server.explain(await ready.text())


async def stored_outcome(engine, flash: dict) -> dict:
    """What the database holds after the claims: the session's orders per buyer and the
    units in them, the flash sale's claims per buyer, and the units reserved on its variant."""
    in_session = Order.live_session_id == flash["live_session_id"]
    async with engine.connect() as conn:
        buyers = (await conn.scalars(select(Order.buyer_id).where(in_session))).all()
        units = await conn.scalar(
            select(func.sum(OrderItem.quantity))
            .select_from(OrderItem)
            .join(Order)
            .where(in_session)
        )
        claims = await conn.execute(
            select(FlashClaim.buyer_id, FlashClaim.quantity).where(
                FlashClaim.flash_sale_id == flash["id"]
            )
        )
        reserved = await conn.scalar(
            select(Variant.reserved).where(Variant.id == flash["variant_id"])
        )
    return {
        "orders_by_buyer": Counter(buyers),
        "units": units,
        "claims": Counter(dict(claims.all())),
        "reserved": reserved,
    }
