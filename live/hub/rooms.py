"""Joining and leaving a live session's rooms, and the snapshot a joining client starts from.

After `session:join` the client is in `live:{id}` (and `staff:{id}` when it may
moderate) and gets, in the ack, everything it needs to draw the stream page without
another request: status, pinned product, active flash sale (with the server's clock
for countdowns), viewer count, slow mode and the last 50 chat messages. Every change
after that arrives as an event in the room, so snapshot + events = current state.

Each join also opens a visit row (`live.analytics.visits`), closed on `session:leave`
or disconnect: the durable record behind viewer stats, shared by every process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from live.analytics.visits import close_visit, open_visit
from live.flash.service import active_flash
from live.hub.bridge import sales
from live.hub.chat import recent
from live.hub.context import HubContext, Member, live_room, staff_room
from live.hub.dispatch import Events, Payload
from live.hub.pins import product_card
from live.sessions.models import LiveSession
from live.sessions.schemas import Id

events = Events()


class SessionIn(Payload):
    live_session_id: Id


@events.on("session:join", SessionIn)
async def join(hub: HubContext, member: Member, body: SessionIn) -> dict:
    live = await hub.live_sessions.get(body.live_session_id)
    role = await hub.live_sessions.role(member.principal, live)
    await hub.sio.enter_room(member.sid, live_room(live.id))
    if role is not None:
        await hub.sio.enter_room(member.sid, staff_room(live.id))
    if live.id not in member.joined:  # joining twice must not count the viewer twice
        await open_visit(
            hub.sessions, live.id, member.sid, member.viewer_key, member.user_id is not None
        )
        member.joined.add(live.id)
        await hub.presence.join(live.id, member.viewer_key)
    return {"snapshot": await snapshot(hub, live, role)}


@events.on("session:leave", SessionIn)
async def leave(hub: HubContext, member: Member, body: SessionIn) -> dict:
    await hub.sio.leave_room(member.sid, live_room(body.live_session_id))
    await hub.sio.leave_room(member.sid, staff_room(body.live_session_id))
    await stop_watching(hub, member, body.live_session_id)
    return {}


async def stop_watching(hub: HubContext, member: Member, live_session_id: str) -> None:
    """Undo a join, on `session:leave` and on disconnect: the visit is closed before the
    viewer count moves, so a count seen to drop means the visit is already recorded."""
    if live_session_id in member.joined:
        member.joined.discard(live_session_id)
        try:
            await close_visit(hub.sessions, live_session_id, member.sid)
        finally:  # a database hiccup must not leave the viewer counted for ever
            await hub.presence.leave(live_session_id, member.viewer_key)


async def snapshot(hub: HubContext, live: LiveSession, role: str | None) -> dict[str, Any]:
    pinned = None
    if live.pinned_product_id is not None:
        items = await hub.live_sessions.showcase(live.id)
        item = next((i for i in items if i.product_id == live.pinned_product_id), None)
        pinned = None if item is None else product_card(live.id, item)
    state = {
        "live_session_id": live.id,
        "title": live.title,
        "status": live.status,
        "role": role,
        "server_time": datetime.now(UTC).isoformat(),
        "pinned": pinned,
        "flash": await active_flash(hub.sessions, live.id),
        "viewers": await hub.presence.count(live.id),
        "slow_mode_seconds": live.slow_mode_seconds,
        "messages": await recent(hub.documents, live.id),
    }
    if role is not None:
        state["sales"] = await sales(hub, live.id)
    return state
