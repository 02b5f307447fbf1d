"""The flash-sale claims gate in the app, on SQLite and PostgreSQL, with the in-process
gate and with Redis: refusals that never reach the database, winners the database
refuses giving their units back, and the gatekeeper mending what a crash leaves."""

from __future__ import annotations

import asyncio
import contextvars
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from commerce.catalog.models import Variant
from live import stock_keeper
from live.app import FLASH_GATEKEEPER
from live.flash.gatekeeper import FlashGatekeeper
from live.http.system import BACKENDS
from live.sessions.models import FlashSale
from live.stock_keeper import epoch_ms
from storage.gate import Verdict
from tests.backends import REDIS_URL
from tests.bus_support import eventually
from tests.commerce_support import buyer
from tests.test_auth import assert_problem, bearer
from tests.test_flash import claim, move_window, shop_on, started

SERVING = contextvars.ContextVar("serving", default=False)


@pytest.fixture(params=["memory", "redis"])
def api_settings(request) -> dict:
    """The embedded gate, or a Redis one under a prefix of this test's own."""
    if request.param == "memory":
        return {}
    return {"redis_url": REDIS_URL, "redis_prefix": request.getfixturevalue("redis_prefix")}


async def refused(api, token, flash, status: int, code: str) -> None:
    await assert_problem(await claim(api, token, flash), status, code)


async def test_refusals_never_reach_the_database(api, statements):
    shop = await shop_on(api)
    ann, bob, carl = [await buyer(api, f"{n}@example.com") for n in ("ann", "bob", "carl")]
    flash = await started(api, shop, quantity=2, per_buyer_limit=1)
    assert (await claim(api, ann["token"], flash)).status == 201
    statements.clear()
    await refused(api, ann["token"], flash, 409, "flash-limit-reached")
    await refused(api, shop["token"], flash, 403, "staff-cannot-claim")
    await refused(api, None, flash, 401, "unauthenticated")
    assert statements == []
    assert (await claim(api, bob["token"], flash)).status == 201
    assert statements, "a winner writes its order"
    statements.clear()
    for token in (carl["token"], ann["token"], bob["token"]):
        body = await assert_problem(await claim(api, token, flash), 409, "flash-sold-out")
        assert body["remaining"] == 0
    assert statements == []


async def test_outside_the_window_is_refused_without_the_database(api, statements):
    shop = await shop_on(api)
    ann = await buyer(api, "ann@example.com")
    flash = await started(api, shop, countdown_seconds=30)
    await refused(api, ann["token"], flash, 409, "flash-not-started")  # caches the terms
    statements.clear()
    body = await assert_problem(await claim(api, ann["token"], flash), 409, "flash-not-started")
    assert datetime.fromisoformat(body["starts_at"]) == datetime.fromisoformat(flash["starts_at"])
    assert statements == []
    await move_window(api, flash["id"], starts_at=timedelta(seconds=-60), ends_at=-timedelta(0, 1))
    statements.clear()
    await refused(api, ann["token"], flash, 409, "flash-ended")
    assert statements == []


async def test_a_winner_the_database_refuses_gives_its_unit_back(api):
    shop = await shop_on(api)
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    flash = await started(api, shop, quantity=1, per_buyer_limit=1)
    await set_stock(api, shop["variant_id"], 0)  # the order cannot be placed
    await refused(api, ann["token"], flash, 409, "out-of-stock")
    state = await api.app[BACKENDS].gate.state(flash["id"])
    assert (state.left, state.pending) == (1, {})
    await set_stock(api, shop["variant_id"], 30)
    assert (await claim(api, bob["token"], flash)).status == 201
    assert (await claim(api, ann["token"], flash)).status == 409  # the one unit went once


async def test_an_ended_session_closes_the_gate(api, statements):
    shop = await shop_on(api)
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    flash = await started(api, shop, quantity=5)
    assert (await claim(api, ann["token"], flash)).status == 201
    ended = await api.post(
        f"/api/live-sessions/{shop['live']['id']}/end", headers=bearer(shop["token"])
    )
    assert ended.status == 200
    await refused(api, bob["token"], flash, 409, "flash-ended")  # the database said so
    statements.clear()
    await refused(api, bob["token"], flash, 409, "flash-ended")
    assert statements == []


async def test_returned_units_can_be_claimed_again(api):
    shop = await shop_on(api)
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    flash = await started(api, shop, quantity=1, per_buyer_limit=1)
    won = await claim(api, ann["token"], flash)
    assert won.status == 201
    await refused(api, bob["token"], flash, 409, "flash-sold-out")
    order_id = (await won.json())["id"]
    cancelled = await api.post(
        f"/api/orders/{order_id}/cancel", json={}, headers=bearer(ann["token"])
    )
    assert cancelled.status == 200
    await eventually(lambda: gate_left(api, flash["id"], 1))
    assert (await claim(api, bob["token"], flash)).status == 201


@pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)
async def test_the_gatekeeper_mends_what_a_crash_leaves(api):
    """Three states a process can die in, mended from the database: decided but never
    written (the unit comes back after the pending time), written but not settled
    (counted once), and a unit the gate lost track of (counted again)."""
    shop = await shop_on(api)
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    flash = await started(api, shop, quantity=3, per_buyer_limit=1)
    gate = api.app[BACKENDS].gate
    keeper = FlashGatekeeper(api.app[BACKENDS].sessions, gate, pending_seconds=0.6)
    await api.app[FLASH_GATEKEEPER].stop()  # only this test's keeper mends

    now = epoch_ms(datetime.now(UTC))
    decided = await gate.take(flash["id"], bob["user"]["id"], 1, "died-before-writing", now)
    assert decided.verdict is Verdict.WON
    assert await keeper.tick() == 0  # young: it may still be written
    await asyncio.sleep(0.7)
    assert await keeper.tick() == 1
    assert await gate_left(api, flash["id"], 3)
    assert (await claim(api, bob["token"], flash)).status == 201  # his allowance is back too

    won = await claim(api, ann["token"], flash)
    order_id = (await won.json())["id"]
    now = epoch_ms(datetime.now(UTC))
    assert (await gate.take(flash["id"], "ann-again", 1, order_id, now)).verdict is Verdict.WON
    await keeper.resync(flash["id"])  # pending, but its order exists: counted once
    assert await gate_left(api, flash["id"], 1)

    lost = await gate.take(flash["id"], "nobody", 1, "lost", epoch_ms(datetime.now(UTC)))
    assert lost.verdict is Verdict.WON
    await gate.settle(flash["id"], "lost")  # as if written, which it was not
    assert await gate_left(api, flash["id"], 0)
    assert await keeper.tick() == 1
    assert await gate_left(api, flash["id"], 1)
    async with api.app[BACKENDS].sessions() as session:
        assert await session.scalar(select(FlashSale.sold).where(FlashSale.id == flash["id"])) == 2


async def gate_left(api, flash_id: str, expected: int) -> bool:
    state = await api.app[BACKENDS].gate.state(flash_id)
    return state is not None and state.left == expected and not state.pending


async def set_stock(api, variant_id: str, on_hand: int) -> None:
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(
            update(Variant).where(Variant.id == variant_id).values(on_hand=on_hand)
        )


async def test_a_sold_out_answer_is_remembered_briefly(api, monkeypatch):
    """Once the gate said sold out, the process answers so itself for a moment: a unit
    another process gives back meanwhile is sold after that moment, not lost."""
    monkeypatch.setattr(stock_keeper, "SOLD_OUT_HINT_SECONDS", 0.5)
    shop = await shop_on(api)
    ann, bob = await buyer(api, "ann@example.com"), await buyer(api, "bob@example.com")
    flash = await started(api, shop, quantity=2, per_buyer_limit=1)
    assert (await claim(api, ann["token"], flash)).status == 201
    gate, now = api.app[BACKENDS].gate, epoch_ms(datetime.now(UTC))
    assert (await gate.take(flash["id"], "elsewhere", 1, "other", now)).verdict is Verdict.WON
    await refused(api, bob["token"], flash, 409, "flash-sold-out")
    assert await gate.give_back(flash["id"], "other")  # as another process would
    await refused(api, bob["token"], flash, 409, "flash-sold-out")  # remembered
    await asyncio.sleep(0.6)
    assert (await claim(api, bob["token"], flash)).status == 201
