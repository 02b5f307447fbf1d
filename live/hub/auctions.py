"""Bidding over Socket.IO (`auction:bid`), and the hub as the auctions' audience.

The answer is the decided bid or the refusal's code, as on the REST API. Attaching
these events also makes the hub the service's audience: each accepted bid goes to the
session's room (on every process with the Redis manager) right after its commit. A
thousand bids a second pushed one by one to a thousand viewers would be a million
messages a second, and a viewer needs the newest price, not every step to it: so per
auction at most one push per BID_PUSH_INTERVAL leaves a process, the first of a quiet
spell at once, the rest coalesced into one carrying the newest bid (`Throttle`).
Clients keep the push with the highest `bid_count`: two processes' pushes may cross.
"""

from __future__ import annotations

from typing import Any

from live.auctions.schemas import BidIn
from live.hub.context import HubContext, Member, live_room
from live.hub.dispatch import Events, Payload
from live.hub.throttle import Throttle
from live.sessions.schemas import Id

BID_PUSH_INTERVAL = 0.05


class AuctionEvents(Events):
    def attach(self, hub: HubContext) -> None:
        super().attach(hub)

        async def push(data: dict[str, Any]) -> None:
            await hub.emit("auction:bid", data, live_room(data["live_session_id"]))

        pushes = Throttle(push, BID_PUSH_INTERVAL)
        hub.auctions.announce_through(pushes.offer, pushes.close)


events = AuctionEvents()


class AuctionBidIn(Payload, BidIn):
    auction_id: Id


@events.on("auction:bid", AuctionBidIn)
async def bid(hub: HubContext, member: Member, body: AuctionBidIn) -> dict:
    placed = await hub.auctions.bid(member.principal, body.auction_id, body.amount)
    return {
        "amount": placed.amount,
        "bid_count": placed.bid_count,
        "ends_at": placed.ends_at.isoformat(),
        "extended": placed.extended,
        "bought": placed.bought,
    }
