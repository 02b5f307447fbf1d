"""Giveaways in the hub: the enter button over Socket.IO (`giveaway:enter`). Entering by
a chat keyword happens in `live.hub.chat`; the giveaway's events come through the
bridge."""

from __future__ import annotations

from live.hub.access import require_joined, require_login
from live.hub.context import HubContext, Member
from live.hub.dispatch import Events, Payload
from live.sessions.schemas import Id

events = Events()


class EnterIn(Payload):
    live_session_id: Id
    giveaway_id: Id


@events.on("giveaway:enter", EnterIn)
async def enter(hub: HubContext, member: Member, body: EnterIn) -> dict:
    principal = require_login(member)
    require_joined(member, body.live_session_id)
    return await hub.giveaways.enter(principal, body.giveaway_id, body.live_session_id)
