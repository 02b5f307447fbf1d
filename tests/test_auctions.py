"""Live auctions through the REST API and Socket.IO, on SQLite and PostgreSQL: starting
one, bids accepted and refused (each reason), anti-sniping and sudden death, the end
with the winner's order, the reserve, buy-it-now and the runner-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from commerce.orders.models import Order, OrderStatus
from live.app import LIVE_STATS
from live.auctions.models import Auction
from live.auctions.reports import stats, timeline_entries
from live.auctions.routes import AUCTIONS
from live.http.system import BACKENDS
from tests.hub_support import joining
from tests.test_auth import assert_problem, bearer

START = 100_000
STEP = 10_000


async def start(api, show, token=None, **fields):
    body = {
        "product_id": show["product"]["id"],
        "starting_price": START,
        "min_increment": STEP,
        "duration_seconds": 60,
        **fields,
    }
    return await api.post(
        f"/api/live-sessions/{show['live_id']}/auctions",
        json=body,
        headers=bearer(token or show["token"]),
    )


async def started(api, show, **fields) -> dict:
    response = await start(api, show, **fields)
    assert response.status == 201, await response.text()
    return await response.json()


async def bid(api, token, auction, amount):
    return await api.post(
        f"/api/auctions/{auction['id']}/bids",
        json={"amount": amount},
        headers=bearer(token) if token else {},
    )


async def accepted(api, token, auction, amount) -> dict:
    response = await bid(api, token, auction, amount)
    assert response.status == 201, await response.text()
    return await response.json()


async def details(api, auction) -> dict:
    response = await api.get(f"/api/auctions/{auction['id']}")
    assert response.status == 200, await response.text()
    return await response.json()


async def end_in(api, auction, delta: timedelta) -> None:
    """Move the end relative to now, instead of waiting for the clock."""
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(
            update(Auction)
            .where(Auction.id == auction["id"])
            .values(ends_at=datetime.now(UTC) + delta)
        )


async def ended(api, auction) -> dict:
    """End it now: whichever of our ticks gets there first ends it, once."""
    await end_in(api, auction, -timedelta(seconds=1))
    await api.app[AUCTIONS].closer.tick()
    over = await details(api, auction)
    assert over["status"] == "ended"
    return over


async def order_of(api, order_id: str) -> Order:
    async with api.app[BACKENDS].sessions() as session:
        return await session.get(Order, order_id)


async def test_only_the_shop_starts_an_auction_while_live_with_sane_prices(api, show, ann):
    await assert_problem(await start(api, show, ann["token"]), 403, "not-your-shop")
    await assert_problem(
        await start(api, show, reserve_price=START - 1), 422, "reserve-below-start"
    )
    await assert_problem(await start(api, show, buy_now_price=START), 422, "buy-now-too-low")
    await assert_problem(await start(api, show, min_increment=0), 422, "validation-error")
    first = await started(api, show, reserve_price=150_000, buy_now_price=500_000)
    assert first["status"] == "running" and first["minimum_bid"] == START
    assert first["ending"] == "anti_sniping" and first["extend_seconds"] == 30
    await assert_problem(await start(api, show), 409, "auction-running")

    ended_show = await api.post(
        f"/api/live-sessions/{show['live_id']}/end", headers=bearer(show["token"])
    )
    assert ended_show.status == 200, await ended_show.text()
    await assert_problem(await start(api, show), 409, "live-session-not-live")
    listed = await (await api.get(f"/api/live-sessions/{show['live_id']}/auctions")).json()
    assert [a["id"] for a in listed["items"]] == [first["id"]]


async def test_bids_are_refused_with_a_reason(api, show, ann, bob):
    auction = await started(api, show)
    await assert_problem(await bid(api, None, auction, START), 401, "auth-required")
    await assert_problem(await bid(api, show["token"], auction, START), 403, "own-shop-bid")
    low = await assert_problem(await bid(api, ann["token"], auction, START - 1), 409, "bid-too-low")
    assert low["minimum"] == START

    first = await accepted(api, ann["token"], auction, START)
    assert first["amount"] == START and first["bid_count"] == 1 and first["bidder_name"] == "ann"
    low = await assert_problem(
        await bid(api, bob["token"], auction, START + STEP - 1), 409, "bid-too-low"
    )
    assert low["minimum"] == START + STEP
    await accepted(api, bob["token"], auction, START + STEP)

    await end_in(api, auction, -timedelta(seconds=1))  # over, before any tick ends it
    await assert_problem(await bid(api, ann["token"], auction, 10**6), 409, "auction-ended")
    missing = await api.post(
        "/api/auctions/nope/bids", json={"amount": START}, headers=bearer(ann["token"])
    )
    await assert_problem(missing, 404, "auction-not-found")

    history = (await details(api, auction))["bids"]
    assert [(b["amount"], b["bidder_name"]) for b in history] == [
        (START + STEP, "bob"),
        (START, "ann"),
    ]


async def test_socket_bids_and_every_viewer_sees_them(api, show, ann, connect):
    auction = await started(api, show)
    guest, viewer, seller = (
        await connect(),
        await connect(ann["token"]),
        await connect(show["token"]),
    )
    for socket in (guest, viewer, seller):
        await socket.ok("session:join", joining(show["live_id"]))
    payload = {"auction_id": auction["id"], "amount": START}

    await guest.refused("auction:bid", payload, "auth-required")
    await seller.refused("auction:bid", payload, "own-shop-bid")
    answer = await viewer.ok("auction:bid", payload)
    assert answer["amount"] == START and answer["bid_count"] == 1
    for socket in (guest, viewer, seller):
        seen = await socket.wait_for("auction:bid")
        assert seen["auction_id"] == auction["id"] and seen["amount"] == START
        assert seen["bidder_name"] == "ann" and seen["ends_at"] == answer["ends_at"]
    error = await viewer.refused("auction:bid", payload, "bid-too-low")
    assert error["minimum"] == START + STEP


async def test_anti_sniping_moves_the_end_exactly_and_says_so(api, show, ann, bob, connect):
    auction = await started(api, show, extend_seconds=20)
    viewer = await connect(bob["token"])
    await viewer.ok("session:join", joining(show["live_id"]))

    early = await accepted(api, ann["token"], auction, START)  # 60 s left: no change
    assert early["extended"] is False and early["ends_at"] == auction["ends_at"]
    await end_in(api, auction, timedelta(seconds=5))
    late = await accepted(api, ann["token"], auction, START + STEP)
    placed_at = datetime.fromisoformat(late["placed_at"])
    assert late["extended"] is True
    assert datetime.fromisoformat(late["ends_at"]) == placed_at + timedelta(seconds=20)
    seen = await viewer.wait_for("auction:bid", lambda e: e["amount"] == START + STEP)
    assert seen["extended"] is True
    assert datetime.fromisoformat(seen["ends_at"]) == datetime.fromisoformat(late["ends_at"])
    assert (await details(api, auction))["ends_at"] == late["ends_at"]


async def test_sudden_death_never_moves_the_end(api, show, ann):
    auction = await started(api, show, ending="sudden_death")
    assert auction["extend_seconds"] == 0
    await end_in(api, auction, timedelta(seconds=2))
    fixed_end = (await details(api, auction))["ends_at"]
    late = await accepted(api, ann["token"], auction, START)
    assert late["extended"] is False and late["ends_at"] == fixed_end


async def test_the_winner_gets_an_order_at_the_winning_price(api, show, ann, bob, connect):
    auction = await started(api, show)
    viewer = await connect(bob["token"])
    await viewer.ok("session:join", joining(show["live_id"]))
    await accepted(api, ann["token"], auction, START)
    await accepted(api, bob["token"], auction, START + STEP)

    over = await ended(api, auction)
    assert over["winner_id"] == bob["user"]["id"] and over["winner_name"] == "bob"
    assert over["reserve_met"] is True and over["order_id"]
    order = await order_of(api, over["order_id"])
    assert order.buyer_id == bob["user"]["id"] and order.total >= START + STEP
    assert order.status == OrderStatus.PENDING_PAYMENT and order.payment_deadline is not None
    assert order.payment_deadline > datetime.now(UTC)
    announced = await viewer.wait_for("auction:ended")
    assert announced["winner_name"] == "bob" and announced["current_price"] == START + STEP
    assert "order_id" not in announced
    assert await api.app[AUCTIONS].closer.tick() == 0  # ended once


async def test_below_the_reserve_nobody_wins(api, show, ann):
    auction = await started(api, show, reserve_price=START + 5 * STEP)
    await accepted(api, ann["token"], auction, START)
    over = await ended(api, auction)
    assert over["reserve_met"] is False and over["winner_id"] is None
    assert over["order_id"] is None


async def test_buy_it_now_ends_it_at_once_for_that_bidder(api, show, ann, bob):
    auction = await started(api, show, buy_now_price=300_000)
    bought = await accepted(api, ann["token"], auction, 400_000)
    assert bought["bought"] is True and bought["amount"] == 300_000
    over = await details(api, auction)
    assert over["status"] == "ended" and over["winner_id"] == ann["user"]["id"]
    assert over["current_price"] == 300_000 and over["order_id"]
    await assert_problem(await bid(api, bob["token"], auction, 500_000), 409, "auction-ended")


async def test_the_runner_up_is_offered_it_once_the_winner_cancels(api, show, ann, bob):
    auction = await started(api, show)
    await accepted(api, ann["token"], auction, START)
    await accepted(api, bob["token"], auction, START + STEP)
    await accepted(api, ann["token"], auction, START + 2 * STEP)
    await accepted(api, bob["token"], auction, START + 3 * STEP)
    over = await ended(api, auction)
    offer = f"/api/auctions/{auction['id']}/offer-runner-up"

    await assert_problem(await api.post(offer, headers=bearer(ann["token"])), 403, "not-your-shop")
    await assert_problem(
        await api.post(offer, headers=bearer(show["token"])), 409, "winner-order-open"
    )
    cancelled = await api.post(
        f"/api/orders/{over['order_id']}/cancel", json={}, headers=bearer(bob["token"])
    )
    assert cancelled.status == 200, await cancelled.text()
    response = await api.post(offer, headers=bearer(show["token"]))
    assert response.status == 201, await response.text()
    offered = await response.json()
    assert offered["runner_up_id"] == ann["user"]["id"]
    assert offered["runner_up_amount"] == START + 2 * STEP
    order = await order_of(api, offered["runner_up_order_id"])
    assert order.buyer_id == ann["user"]["id"] and order.payment_deadline is not None
    await assert_problem(
        await api.post(offer, headers=bearer(show["token"])), 409, "runner-up-offered"
    )


async def test_cancel_only_before_the_first_bid(api, show, ann):
    auction = await started(api, show)
    cancel = f"/api/auctions/{auction['id']}/cancel"
    response = await api.post(cancel, headers=bearer(show["token"]))
    assert response.status == 200 and (await response.json())["status"] == "cancelled"
    await assert_problem(await bid(api, ann["token"], auction, START), 409, "auction-cancelled")

    second = await started(api, show)
    await accepted(api, ann["token"], second, START)
    await assert_problem(
        await api.post(f"/api/auctions/{second['id']}/cancel", headers=bearer(show["token"])),
        409,
        "auction-not-cancellable",
    )


async def test_timeline_and_stats(api, show, ann):
    auction = await started(api, show)
    await accepted(api, ann["token"], auction, START)
    await accepted(api, ann["token"], auction, START + STEP)
    await ended(api, auction)
    async with api.app[BACKENDS].sessions() as session:
        entries = await timeline_entries(session, show["live_id"])
        figures = await stats(session, show["live_id"])
    assert [kind for _, kind, _ in entries] == ["auction.started", "auction.ended"]
    assert entries[1][2]["winner_name"] == "ann" and entries[1][2]["amount"] == START + STEP
    assert figures == {"auctions": 1, "bids": 2, "sold": 1, "revenue": START + STEP}
    async with api.app[BACKENDS].sessions() as session:
        assert await session.scalar(select(Auction.bid_count)) == 2
    # The owner's stats and the replay's timeline carry them.
    response = await api.get(
        f"/api/live-sessions/{show['live_id']}/stats", headers=bearer(show["token"])
    )
    assert response.status == 200
    assert (await response.json())["auctions"] == figures
    marks = await api.app[LIVE_STATS].timeline(show["live_id"])
    auction_marks = [m for m in marks if m.kind.startswith("auction")]
    assert [m.kind for m in auction_marks] == ["auction_started", "auction_ended"]
    assert auction_marks[1].detail["amount"] == START + STEP
    assert auction_marks[1].product_id == show["product"]["id"]
