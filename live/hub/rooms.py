"""Joining and leaving a live session's rooms, and the snapshot a joining client starts from.

After `session:join` the client is in `live:{id}` (and `staff:{id}` when it may
moderate) and gets, in the ack, everything it needs to draw the stream page without
another request: status, pinned product, active flash sale (with the server's clock
for countdowns), viewer count, slow mode and the last 50 chat messages. Every change
after that arrives as an event in the room, so snapshot + events = current state.

The parts of the snapshot every viewer shares are cached per session until a room event
changes them (`live.hub.snapshots`), the shop's team is cached (`ShopTeams`), and the
visit row (`live.analytics.visits`: the durable record behind viewer stats, opened here
and closed on `session:leave` or disconnect) is written in batches off the join's path,
so a join does not wait for the database.

A socket may join or leave at most JOIN_LIMIT times every JOIN_WINDOW seconds (both
count), enough to switch between streams; past that it is refused with `rate-limited`,
as chat is, before anything is entered or written: a socket joining and leaving in a
loop once wrote a visit row every 35 ms.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from live.auctions.service import AuctionService
from live.flash.service import active_flash
from live.giveaways.service import GiveawayService
from live.hub.bridge import sales
from live.hub.context import HubContext, Member, live_room, staff_room
from live.hub.dispatch import Events, Payload
from live.hub.pins import product_card
from live.sessions.models import LiveSession
from live.sessions.schemas import Id
from live.sessions.service import LiveSessionService
from live.vouchers.service import VoucherDrops
from storage.web import Problem

events = Events()
JOIN_LIMIT = 10
JOIN_WINDOW = 10.0


class SessionIn(Payload):
    live_session_id: Id


@events.on("session:join", SessionIn)
async def join(hub: HubContext, member: Member, body: SessionIn) -> dict:
    _keep_pace(member)
    live_session_id = body.live_session_id
    room = live_room(live_session_id)
    await hub.sio.enter_room(member.sid, room)  # first: a change after the snapshot is an event
    try:
        shared = await hub.snapshots.shared(live_session_id)
    except Problem:
        if live_session_id not in member.joined:
            await hub.sio.leave_room(member.sid, room)
        raise
    role = await hub.teams.role(member.principal, shared.live.shop_id)
    if role is not None:
        await hub.sio.enter_room(member.sid, staff_room(live_session_id))
    if live_session_id not in member.joined:  # joining twice must not count the viewer twice
        hub.visits.open(live_session_id, member.sid, member.viewer_key, member.user_id is not None)
        member.joined.add(live_session_id)
        await hub.presence.join(live_session_id, member.viewer_key)
    return {"snapshot": await snapshot(hub, shared, role)}


@events.on("session:leave", SessionIn)
async def leave(hub: HubContext, member: Member, body: SessionIn) -> dict:
    _keep_pace(member)
    await hub.sio.leave_room(member.sid, live_room(body.live_session_id))
    await hub.sio.leave_room(member.sid, staff_room(body.live_session_id))
    await stop_watching(hub, member, body.live_session_id)
    return {}


def _keep_pace(member: Member) -> None:
    left = member.moves.take(JOIN_LIMIT, JOIN_WINDOW, time.monotonic())
    if left:
        raise Problem(
            429,
            "rate-limited",
            f"At most {JOIN_LIMIT} joins and leaves every {JOIN_WINDOW:g} seconds.",
            retry_after=max(1, math.ceil(left)),
        )


async def stop_watching(hub: HubContext, member: Member, live_session_id: str) -> None:
    """Undo a join, on `session:leave` and on disconnect: the visit is closed before the
    viewer count moves, so a count seen to drop means the visit is already recorded."""
    if live_session_id in member.joined:
        member.joined.discard(live_session_id)
        hub.visits.close(live_session_id, member.sid)
        await hub.presence.leave(live_session_id, member.viewer_key)


@dataclass(frozen=True, slots=True)
class Shared:
    """What every viewer's snapshot of a session shares, and the session itself."""

    live: LiveSession
    state: dict[str, Any]


def shared_builder(live_sessions: LiveSessionService, sessions: Any):
    """`Snapshots`' builder of the shared part: the session (404 when there is none),
    its pinned product's card and its flash sale."""

    async def build(live_session_id: str) -> Shared:
        live = await live_sessions.get(live_session_id)
        pinned = None
        if live.pinned_product_id is not None:
            items = await live_sessions.showcase(live.id)
            item = next((i for i in items if i.product_id == live.pinned_product_id), None)
            pinned = None if item is None else product_card(live.id, item)
        state = {
            "live_session_id": live.id,
            "title": live.title,
            "status": live.status,
            "pinned": pinned,
            "flash": await active_flash(sessions, live.id),
            "slow_mode_seconds": live.slow_mode_seconds,
        }
        return Shared(live, state)

    return build


def live_tools_builder(
    auctions: AuctionService, giveaways: GiveawayService, vouchers: VoucherDrops
):
    """`Snapshots`' builder of the live tools a viewer joining late must see at once:
    the running auctions, the giveaways taking entries and the voucher drops left."""

    async def build(live_session_id: str) -> dict[str, Any]:
        return {
            "auctions": await auctions.running(live_session_id),
            "giveaways": await giveaways.open_in(live_session_id),
            "vouchers": await vouchers.claimable(live_session_id),
        }

    return build


async def snapshot(hub: HubContext, shared: Shared, role: str | None) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    live_session_id = shared.live.id
    state = {
        **shared.state,
        "role": role,
        "server_time": now,
        "viewers": await hub.presence.count(live_session_id),
        "messages": await hub.snapshots.messages(live_session_id),
        **await hub.snapshots.live_tools(live_session_id),
    }
    if state["flash"] is not None:  # countdowns run from the server's clock of now
        state["flash"] = {**state["flash"], "server_time": now}
    for tool in ("giveaways", "vouchers"):  # their countdowns too
        state[tool] = [{**item, "server_time": now} for item in state[tool]]
    if role is not None:
        state["sales"] = await sales(hub, live_session_id)
    return state
