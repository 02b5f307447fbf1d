"""Bids racing on two real `streamcart serve` processes sharing PostgreSQL and Redis:
one consistent history with strictly increasing amounts, and one end with one winner
and one order, whichever process ends it."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from commerce.orders.models import Order, OrderItem
from live.auctions.models import Auction
from storage.outbox import OutboxRow
from storage.sql import session_factory
from tests.bus_support import eventually
from tests.hub_support import open_socket, seller_on_air
from tests.server_process import replica_settings, serving
from tests.test_auth import bearer
from tests.test_flash import many_buyers

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]

BIDDERS = 50
BIDS_EACH = 10
START = 100_000
STEP = 1_000


@pytest.fixture
async def servers(sql_engine, sql_url, tmp_path):
    async with serving(tmp_path, ("a", "b"), replica_settings(sql_url)) as pair:
        yield pair


async def test_racing_bids_on_two_processes_give_one_history_and_one_winner(
    servers, sql_engine, opened
):
    a, b = servers
    show = await seller_on_air(a)
    started = await a.post(
        f"/api/live-sessions/{show['live_id']}/auctions",
        json={
            "product_id": show["product"]["id"],
            "starting_price": START,
            "min_increment": STEP,
            "duration_seconds": 600,
        },
        headers=bearer(show["token"]),
    )
    assert started.status == 201, await started.text()
    auction = await started.json()
    bidders = await many_buyers(a, BIDDERS)
    # Every amount is bid twice, so two bids at one price race each other too.
    amounts = [START + (i // 2) * STEP for i in range(BIDDERS * BIDS_EACH)]
    random.Random(7).shuffle(amounts)

    async def over_rest(server, bidder, amount) -> tuple[str, dict]:
        response = await server.post(
            f"/api/auctions/{auction['id']}/bids",
            json={"amount": amount},
            headers=bearer(bidder["token"]),
        )
        return bidder["user"]["id"], {"status": response.status, **(await response.json())}

    async def over_socket(socket, bidder, amount) -> tuple[str, dict]:
        answer = await socket.call("auction:bid", {"auction_id": auction["id"], "amount": amount})
        return bidder["user"]["id"], answer

    attempts = []
    for i, bidder in enumerate(bidders):
        server = (a, b)[i % 2]
        mine = amounts[i * BIDS_EACH : (i + 1) * BIDS_EACH]
        if (i // 2) % 2:
            attempts += [over_rest(server, bidder, amount) for amount in mine]
        else:
            socket = await open_socket(server, bidder["token"], opened)
            attempts += [over_socket(socket, bidder, amount) for amount in mine]
    answers = await asyncio.gather(*attempts)

    accepted = [(who, answer) for who, answer in answers if "amount" in answer]
    refusals = Counter(
        (answer.get("code") or answer["error"]["code"])
        for _, answer in answers
        if "amount" not in answer
    )
    assert accepted and set(refusals) <= {"bid-too-low"}
    assert len(accepted) + sum(refusals.values()) == BIDDERS * BIDS_EACH
    accepted_amounts = [answer["amount"] for _, answer in accepted]
    assert len(set(accepted_amounts)) == len(accepted_amounts)  # never two at one price
    by_count = sorted(accepted, key=lambda pair: pair[1]["bid_count"])
    assert [answer["bid_count"] for _, answer in by_count] == list(range(1, len(accepted) + 1))
    in_order = [answer["amount"] for _, answer in by_count]
    assert all(x < y for x, y in itertools.pairwise(in_order))

    history = (await (await b.get(f"/api/auctions/{auction['id']}")).json())["bids"]
    assert [bid["amount"] for bid in reversed(history)] == in_order
    top_bidder, top = by_count[-1][0], in_order[-1]

    sessions = session_factory(sql_engine)
    async with sessions.begin() as session:
        await session.execute(
            update(Auction)
            .where(Auction.id == auction["id"])
            .values(ends_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    async def is_over() -> bool:
        return (await (await a.get(f"/api/auctions/{auction['id']}")).json())["status"] == "ended"

    await eventually(is_over, within=10)
    final = await (await b.get(f"/api/auctions/{auction['id']}")).json()
    assert final["winner_id"] == top_bidder and final["current_price"] == top
    async with sessions() as session:
        orders = (
            await session.execute(
                select(Order.id, Order.buyer_id, OrderItem.unit_price)
                .join(OrderItem, OrderItem.order_id == Order.id)
                .where(OrderItem.product_id == show["product"]["id"])
            )
        ).all()
        ended_events = await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.type == "auction.ended")
        )
    assert [(o.id, o.buyer_id, o.unit_price) for o in orders] == [
        (final["order_id"], top_bidder, top)
    ]
    assert ended_events == 1
