"""Giveaways over REST and Socket.IO, on SQLite and PostgreSQL: starting one, entering by
the button, a chat keyword or as a follower, one draw whoever ticks, the commit-reveal
checked by the script in docs/giveaways.md, and the winners' zero-price prize orders.
The draw across two real server processes is at the end (PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Update, func, select, text, update

from commerce.orders.models import Order
from commerce.orders.routes import CHECKOUT
from live.app import SWEEPER
from live.giveaways.drawer import GiveawayDrawer
from live.giveaways.models import Giveaway, GiveawayWinner
from live.giveaways.public import stats, timeline_entries
from live.http.system import BACKENDS
from storage.outbox import OutboxRow
from storage.sql import session_factory
from tests.bus_support import eventually
from tests.hub_support import joining, seller_on_air
from tests.server_process import replica_settings, serving
from tests.test_auth import assert_problem, bearer
from tests.test_flash import many_buyers, schedule
from tests.test_orders import stock

DOCS = Path(__file__).resolve().parent.parent / "docs" / "giveaways.md"
ADDRESS = {"recipient": "Ann", "phone": "0901234567", "line1": "1 Le Loi", "city": "HCMC"}


async def start(api, show, token=None, **fields):
    body = {
        "product_id": show["product"]["id"],
        "winners": 1,
        "entry_mode": "button",
        "duration_seconds": 60,
        **fields,
    }
    return await api.post(
        f"/api/live-sessions/{show['live_id']}/giveaways",
        json=body,
        headers=bearer(token or show["token"]),
    )


async def started(api, show, **fields) -> dict:
    response = await start(api, show, **fields)
    assert response.status == 201, await response.text()
    return await response.json()


async def enter(api, token, giveaway):
    headers = bearer(token) if token else {}
    return await api.post(f"/api/giveaways/{giveaway['id']}/enter", headers=headers)


async def entered(api, token, giveaway) -> dict:
    response = await enter(api, token, giveaway)
    assert response.status == 200, await response.text()
    return await response.json()


async def record(api, giveaway) -> dict:
    response = await api.get(f"/api/giveaways/{giveaway['id']}")
    assert response.status == 200, await response.text()
    return await response.json()


async def drawn(api, giveaway, within: float = 10.0) -> dict:
    """The record once the server has drawn the giveaway."""
    found: dict = {}

    async def is_drawn() -> bool:
        found.update(await record(api, giveaway))
        return found["status"] == "drawn"

    await eventually(is_drawn, within)
    return found


async def close_now(api, giveaway) -> None:
    """Entries close now, instead of waiting for the clock."""
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(close(giveaway))


def close(giveaway: dict) -> Update:
    return (
        update(Giveaway)
        .where(Giveaway.id == giveaway["id"])
        .values(closes_at=datetime.now(UTC) - timedelta(milliseconds=1))
    )


async def events(api, type_: str) -> list[dict]:
    async with api.app[BACKENDS].sessions() as session:
        rows = await session.scalars(select(OutboxRow.data).where(OutboxRow.type == type_))
        return list(rows.all())


async def test_start_publishes_the_commitment_not_the_seed(api, show):
    giveaway = await started(api, show, entry_mode="keyword", keyword="Quà tặng", winners=2)
    assert giveaway["status"] == "open" and giveaway["seed"] is None
    assert re.fullmatch(r"[0-9a-f]{64}", giveaway["seed_commitment"])
    assert giveaway["keyword"] == "Quà tặng" and giveaway["winners_count"] == 2
    (event,) = await events(api, "giveaway.started")
    assert event["seed_commitment"] == giveaway["seed_commitment"] and event["seed"] is None
    listed = await (await api.get(f"/api/live-sessions/{show['live_id']}/giveaways")).json()
    assert [g["id"] for g in listed["items"]] == [giveaway["id"]]
    assert listed["items"][0]["entries_count"] == 0
    assert (await record(api, giveaway))["seed"] is None


async def test_start_is_refused_to_outsiders_off_air_and_with_bad_values(api, show, ann):
    await assert_problem(await start(api, show, token=ann["token"]), 403, "not-your-shop")
    await assert_problem(await start(api, show, winners=0), 422, "validation-error")
    await assert_problem(await start(api, show, duration_seconds=0), 422, "validation-error")
    await assert_problem(await start(api, show, entry_mode="keyword"), 422, "keyword-mismatch")
    await assert_problem(await start(api, show, keyword="gift"), 422, "keyword-mismatch")
    await assert_problem(await start(api, show, winners=11), 409, "not-enough-stock")
    later = await schedule(api, show, show["product"]["id"])
    off_air = {**show, "live_id": later["id"]}
    await assert_problem(await start(api, off_air), 409, "live-session-not-live")
    assert await events(api, "giveaway.started") == []


async def test_the_button_counts_each_viewer_once_and_never_staff_or_guests(api, show, ann):
    giveaway = await started(api, show)
    presses = await asyncio.gather(*(entered(api, ann["token"], giveaway) for _ in range(5)))
    assert sorted(p["already_entered"] for p in presses) == [False] + [True] * 4
    assert (await entered(api, ann["token"], giveaway))["already_entered"] is True
    await assert_problem(await enter(api, None, giveaway), 401, "unauthenticated")
    await assert_problem(await enter(api, show["token"], giveaway), 403, "staff-cannot-enter")
    public = await record(api, giveaway)
    assert public["entries"] == [{"user_id": ann["user"]["id"], "display_name": "ann"}]
    assert public["entries_count"] == 1


async def test_followers_only_refuses_until_the_viewer_follows(api, show, ann):
    giveaway = await started(api, show, entry_mode="followers")
    await assert_problem(await enter(api, ann["token"], giveaway), 403, "followers-only")
    follow = await api.post(f"/api/shops/{show['shop']['id']}/follow", headers=bearer(ann["token"]))
    assert follow.status in (200, 201, 204), await follow.text()
    assert (await entered(api, ann["token"], giveaway))["already_entered"] is False


async def test_entries_after_close_are_refused(api, show, ann, bob):
    giveaway = await started(api, show)
    await entered(api, ann["token"], giveaway)
    await close_now(api, giveaway)
    await assert_problem(await enter(api, bob["token"], giveaway), 409, "giveaway-closed")
    public = await drawn(api, giveaway)
    assert [e["user_id"] for e in public["entries"]] == [ann["user"]["id"]]
    await assert_problem(await enter(api, bob["token"], giveaway), 409, "giveaway-closed")


async def test_a_chat_keyword_enters_its_sender_and_the_message_still_goes_out(
    api, connect, show, ann, bob
):
    giveaway = await started(api, show, entry_mode="keyword", keyword="Quà")
    await assert_problem(await enter(api, ann["token"], giveaway), 409, "enter-by-keyword")
    ann_socket, bob_socket = await connect(ann["token"]), await connect(bob["token"])
    for socket in (ann_socket, bob_socket):
        await socket.ok("session:join", joining(show["live_id"]))
    await ann_socket.ok("chat:send", {"live_session_id": show["live_id"], "text": "cho em QUÀ với"})
    await bob_socket.ok("chat:send", {"live_session_id": show["live_id"], "text": "xin chào"})
    said = await bob_socket.wait_for("chat:message", lambda m: m["user_id"] == ann["user"]["id"])
    assert said["text"] == "cho em QUÀ với"
    public = await record(api, giveaway)
    assert [e["user_id"] for e in public["entries"]] == [ann["user"]["id"]]


async def test_socket_entry_and_the_draw_reach_the_room(api, connect, show, ann):
    giveaway = await started(api, show)
    socket = await connect(ann["token"])
    body = {"live_session_id": show["live_id"], "giveaway_id": giveaway["id"]}
    await socket.refused("giveaway:enter", body, "not-joined")
    await socket.ok("session:join", joining(show["live_id"]))
    answer = await socket.ok("giveaway:enter", body)
    assert answer["already_entered"] is False
    count = await socket.wait_for("giveaway:entered")
    assert count == {
        "giveaway_id": giveaway["id"],
        "live_session_id": show["live_id"],
        "entries_count": 1,
    }
    await close_now(api, giveaway)
    announced = await socket.wait_for("giveaway:drawn", within=10.0)
    assert announced["id"] == giveaway["id"] and announced["entries_count"] == 1
    assert announced["winners"] == [
        {"user_id": ann["user"]["id"], "display_name": "ann", "rank": 1}
    ]
    seed = bytes.fromhex(announced["seed"])
    assert hashlib.sha256(seed).hexdigest() == giveaway["seed_commitment"]
    await socket.refused("giveaway:enter", body, "giveaway-closed")


async def test_two_drawers_racing_draw_once(api, show):
    buyers = await many_buyers(api, 6)
    giveaway = await started(api, show, winners=3)
    for person in buyers:
        await entered(api, person["token"], giveaway)
    await close_now(api, giveaway)
    sessions, checkout = api.app[BACKENDS].sessions, api.app[CHECKOUT]
    drawers = [GiveawayDrawer(sessions, checkout) for _ in range(2)]
    results = await asyncio.gather(*(d.tick() for d in drawers))  # the app's ticks too
    assert sum(results) <= 1
    public = await drawn(api, giveaway)
    assert len(await events(api, "giveaway.drawn")) == 1
    assert [w["rank"] for w in public["winners"]] == [1, 2, 3]
    async with sessions() as session:
        winners = await session.scalar(select(func.count()).select_from(GiveawayWinner))
        prizes = await session.scalar(select(func.count()).where(Order.total == 0))
    assert winners == 3 and prizes == 3
    assert sum(await asyncio.gather(*(d.tick() for d in drawers))) == 0


async def test_the_docs_script_recomputes_the_winners(api, show, tmp_path):
    buyers = await many_buyers(api, 5)
    giveaway = await started(api, show, winners=2)
    for person in buyers:
        await entered(api, person["token"], giveaway)
    await close_now(api, giveaway)
    public = await drawn(api, giveaway)
    script = tmp_path / "check_giveaway.py"
    script.write_text(docs_script())

    url = str(api.server.make_url(f"/api/giveaways/{giveaway['id']}"))
    code, output = await run(script, url)
    assert code == 0, output
    winners = [line.split()[2] for line in output.splitlines() if line.startswith("winner ")]
    assert winners == [w["user_id"] for w in public["winners"]]
    assert "commitment OK" in output and "winners MATCH" in output

    loser = next(e for e in public["entries"] if e["user_id"] not in winners)
    forged = {**public, "winners": [{**public["winners"][0], **loser}, public["winners"][1]]}
    saved = tmp_path / "forged.json"
    saved.write_text(json.dumps(forged))
    code, output = await run(script, str(saved))
    assert code == 1 and "winners DIFFER" in output


def docs_script() -> str:
    section = DOCS.read_text().split("### Recompute it yourself", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


async def run(script: Path, argument: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        argument,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, output.decode()


async def test_a_winner_confirms_the_zero_price_prize_with_an_address(api, show, ann, bob):
    variant_id = show["product"]["variants"][0]["id"]
    giveaway = await started(api, show)
    await entered(api, ann["token"], giveaway)
    early = await api.post(
        f"/api/giveaways/{giveaway['id']}/claim-prize",
        json={"address_id": "none"},
        headers=bearer(bob["token"]),
    )
    await assert_problem(early, 422, "unknown-address")
    await close_now(api, giveaway)
    (winner,) = (await drawn(api, giveaway))["winners"]
    assert winner["user_id"] == ann["user"]["id"] and winner["prize"] == "unclaimed"
    order = await (
        await api.get(f"/api/orders/{winner['order_id']}", headers=bearer(ann["token"]))
    ).json()
    assert order["total"] == 0 and order["status"] == "pending_payment"
    assert order["items"][0]["product_id"] == show["product"]["id"]
    assert await stock(api, variant_id) == (10, 1)  # held for the winner

    bob_address = await address(api, bob)
    claim = f"/api/giveaways/{giveaway['id']}/claim-prize"
    refused = await api.post(claim, json={"address_id": bob_address}, headers=bearer(bob["token"]))
    await assert_problem(refused, 403, "not-a-winner")
    ann_address = await address(api, ann)
    confirmed = await api.post(
        claim, json={"address_id": ann_address}, headers=bearer(ann["token"])
    )
    assert confirmed.status == 200, await confirmed.text()
    paid = await confirmed.json()
    assert paid["id"] == winner["order_id"] and paid["status"] == "paid"
    assert "1 Le Loi" in paid["shipping_address"] and paid["total"] == 0
    assert await stock(api, variant_id) == (9, 0)  # sold to the winner
    again = await api.post(claim, json={"address_id": ann_address}, headers=bearer(ann["token"]))
    await assert_problem(again, 409, "prize-already-claimed")
    assert (await record(api, giveaway))["winners"][0]["prize"] == "claimed"
    async with api.app[BACKENDS].sessions() as session:
        figures = await stats(session, show["live_id"])
        timeline = await timeline_entries(session, show["live_id"])
    assert figures == {"giveaways": 1, "entries": 1, "winners": 1, "prizes_claimed": 1}
    assert [kind for _, kind, _ in timeline] == ["giveaway.started", "giveaway.drawn"]


async def test_an_unclaimed_prize_expires_and_its_unit_goes_back(api, show, ann):
    variant_id = show["product"]["variants"][0]["id"]
    giveaway = await started(api, show)
    await entered(api, ann["token"], giveaway)
    await close_now(api, giveaway)
    (winner,) = (await drawn(api, giveaway))["winners"]
    assert await stock(api, variant_id) == (10, 1)
    order = await api.get(f"/api/orders/{winner['order_id']}", headers=bearer(ann["token"]))
    deadline = datetime.fromisoformat((await order.json())["payment_deadline"])
    assert deadline - datetime.now(UTC) > timedelta(hours=23)  # a day, not the payment window
    assert await api.app[SWEEPER].sweep(deadline + timedelta(seconds=1)) == 1
    assert await stock(api, variant_id) == (10, 0)
    claim = await api.post(
        f"/api/giveaways/{giveaway['id']}/claim-prize",
        json={"address_id": await address(api, ann)},
        headers=bearer(ann["token"]),
    )
    await assert_problem(claim, 409, "prize-expired")


async def address(api, person) -> str:
    response = await api.post("/api/me/addresses", json=ADDRESS, headers=bearer(person["token"]))
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def test_cancel_is_for_staff_before_the_draw(api, show, ann):
    giveaway = await started(api, show)
    cancel = f"/api/giveaways/{giveaway['id']}/cancel"
    await assert_problem(await api.post(cancel, headers=bearer(ann["token"])), 403, "not-your-shop")
    cancelled = await api.post(cancel, headers=bearer(show["token"]))
    assert cancelled.status == 200, await cancelled.text()
    assert (await cancelled.json())["status"] == "cancelled"
    await assert_problem(await enter(api, ann["token"], giveaway), 409, "giveaway-closed")
    again = await api.post(cancel, headers=bearer(show["token"]))
    await assert_problem(again, 409, "giveaway-not-open")
    assert (await record(api, giveaway))["seed"] is None


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)
async def test_two_server_processes_draw_once(tmp_path, sql_engine, sql_url):
    async with serving(tmp_path, ("a", "b"), replica_settings(sql_url)) as (a, b):
        show = await seller_on_air(a)
        buyers = await many_buyers(a, 6)
        giveaway = await started(a, show, winners=2)
        # Each buyer presses the button on both servers at once: one entry each.
        answers = await asyncio.gather(
            *(entered(server, p["token"], giveaway) for p in buyers for server in (a, b))
        )
        assert sorted(x["already_entered"] for x in answers) == [False] * 6 + [True] * 6
        async with session_factory(sql_engine).begin() as session:  # both servers may draw
            await session.execute(close(giveaway))
        public = await drawn(a, giveaway)
        assert public["entries_count"] == 6 and len(public["winners"]) == 2
        assert (await record(b, giveaway))["winners"] == public["winners"]
    sessions = session_factory(sql_engine)
    async with sessions() as session:
        draws = await session.scalar(select(func.count()).where(OutboxRow.type == "giveaway.drawn"))
        winners = await session.scalar(select(func.count()).select_from(GiveawayWinner))
        prizes = await session.scalar(
            text("SELECT count(*) FROM orders WHERE total = 0 AND note LIKE :note"),
            {"note": f"%{giveaway['id']}%"},
        )
    assert (draws, winners, prizes) == (1, 2, 2)
