"""Pinning: the seller or a moderator puts one product on top of the stream.

The pin is stored on the session (`LiveSessionService.set_pin`), so a viewer joining
later finds it in the `session:join` snapshot; `product:pinned` carries the product
card so clients need no extra request to draw it.
"""

from __future__ import annotations

from typing import Any

from live.hub.access import require_open, require_staff
from live.hub.context import HubContext, Member, live_room
from live.hub.dispatch import Events, Payload
from live.sessions.schemas import Id, ShowcaseItemOut

events = Events()


class PinIn(Payload):
    live_session_id: Id
    product_id: Id


class UnpinIn(Payload):
    live_session_id: Id


def product_card(live_session_id: str, item: ShowcaseItemOut) -> dict[str, Any]:
    """name, image, price, live_price and `available`: what can still be bought in this
    stream ("N left")."""
    return {"live_session_id": live_session_id, **item.model_dump(exclude={"position"})}


@events.on("product:pin", PinIn)
async def pin(hub: HubContext, member: Member, body: PinIn) -> dict:
    live = require_open(await require_staff(hub, member, body.live_session_id))
    item = await hub.live_sessions.set_pin(live.id, body.product_id)
    assert item is not None  # set_pin answers the pinned item, or refuses with a 404
    card = product_card(live.id, item)
    await hub.emit("product:pinned", card, live_room(live.id))
    return {"product": card}


@events.on("product:unpin", UnpinIn)
async def unpin(hub: HubContext, member: Member, body: UnpinIn) -> dict:
    live = require_open(await require_staff(hub, member, body.live_session_id))
    await hub.live_sessions.set_pin(live.id, None)
    await hub.emit("product:unpinned", {"live_session_id": live.id}, live_room(live.id))
    return {}
