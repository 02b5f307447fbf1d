"""Claiming a dropped voucher over the socket: the same fast path as the REST claim
(`live.vouchers.service`), answered in the ack."""

from __future__ import annotations

from live.hub.access import require_login
from live.hub.context import HubContext, Member
from live.hub.dispatch import Events, Payload
from live.sessions.schemas import Id

events = Events()


class ClaimIn(Payload):
    live_session_id: Id
    voucher_id: Id


@events.on("voucher:claim", ClaimIn)
async def claim(hub: HubContext, member: Member, body: ClaimIn) -> dict:
    principal = require_login(member)
    claimed = await hub.vouchers.claim(principal, body.live_session_id, body.voucher_id)
    return {"claim": claimed}
