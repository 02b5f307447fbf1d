"""A viewer who joins after an auction started, a giveaway opened or a voucher was
dropped sees them in the `session:join` snapshot, as they stand at the join, on SQLite
and PostgreSQL; what has ended is left out."""

from __future__ import annotations

import asyncio

import pytest

from live.hub.snapshots import MAX_AGE_SECONDS
from tests import test_auctions as auctions
from tests import test_giveaways as giveaways
from tests import test_vouchers as vouchers
from tests.hub_support import joining
from tests.test_auth import bearer


@pytest.fixture
def api_settings():
    return vouchers.SEPAY_SETTINGS


async def late_snapshot(connect, show, token=None) -> dict:
    socket = await connect(token)
    return (await socket.ok("session:join", joining(show["live_id"])))["snapshot"]


async def test_a_late_viewer_sees_the_running_auction_giveaway_and_drop(
    api, show, ann, bob, connect
):
    empty = await late_snapshot(connect, show)
    assert (empty["auctions"], empty["giveaways"], empty["vouchers"]) == ([], [], [])

    auction = await auctions.started(api, show)
    giveaway = await giveaways.started(api, show)
    voucher = await vouchers.dropped(api, show, total=3)
    await giveaways.entered(api, ann["token"], giveaway)
    await vouchers.claimed(api, show, voucher, ann["token"])

    watching = await connect(bob["token"])
    await watching.ok("session:join", joining(show["live_id"]))
    await auctions.accepted(api, ann["token"], auction, auctions.START)
    await watching.wait_for("auction:bid")  # the push that makes every snapshot stale

    snapshot = await late_snapshot(connect, show, bob["token"])
    (running,) = snapshot["auctions"]
    assert running["id"] == auction["id"] and running["current_price"] == auctions.START
    assert running["leader_name"] == "ann" and running["bid_count"] == 1
    assert running["minimum_bid"] == auctions.START + auctions.STEP
    assert "order_id" not in running  # the room never sees orders
    (open_,) = snapshot["giveaways"]
    assert open_["id"] == giveaway["id"] and open_["seed"] is None
    assert open_["seed_commitment"] == giveaway["seed_commitment"]
    assert open_["server_time"] == snapshot["server_time"]
    (drop,) = snapshot["vouchers"]
    assert drop["voucher_id"] == voucher["id"] and drop["code"] == voucher["code"]

    cancelled = await api.post(
        f"/api/giveaways/{giveaway['id']}/cancel", headers=bearer(show["token"])
    )
    assert cancelled.status in (200, 204), await cancelled.text()
    await auctions.ended(api, auction)
    await watching.wait_for("auction:ended")
    await watching.wait_for("giveaway:cancelled")
    after = await late_snapshot(connect, show)
    assert (after["auctions"], after["giveaways"]) == ([], [])
    assert [d["voucher_id"] for d in after["vouchers"]] == [voucher["id"]]


async def test_a_drop_all_claimed_leaves_the_snapshot(api, show, ann, connect):
    voucher = await vouchers.dropped(api, show, total=1)
    assert len((await late_snapshot(connect, show))["vouchers"]) == 1
    watching = await connect()
    await watching.ok("session:join", joining(show["live_id"]))
    await vouchers.claimed(api, show, voucher, ann["token"])
    await watching.wait_for("voucher:claimed")
    assert (await late_snapshot(connect, show))["vouchers"] == []


async def test_a_withdrawn_drop_leaves_the_snapshot(api, show, connect):
    voucher = await vouchers.dropped(api, show)
    assert len((await late_snapshot(connect, show))["vouchers"]) == 1
    withdrawn = await api.patch(
        f"/api/vouchers/{voucher['id']}", json={"disabled": True}, headers=bearer(show["token"])
    )
    assert withdrawn.status == 200, await withdrawn.text()
    await asyncio.sleep(MAX_AGE_SECONDS)  # no room event says so: the cache's age does
    assert (await late_snapshot(connect, show))["vouchers"] == []
