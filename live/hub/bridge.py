"""From committed state to sockets: domain events off the bus, pushed to the right rooms.

One consumer, "live-hub", competes for the events across processes: each event is
handled once, and its emit reaches every process's sockets through the Socket.IO
manager (Redis when configured). Pushes are consequences of committed state, never the
source of truth, so a client that missed one catches up from the REST API or the next
`session:join` snapshot.

Live sales figures (`sales:updated`, for the session's staff) are counters in the cache:
a sale is a paid bank-transfer order or a placed cash-on-delivery order bought from the
stream. The bus delivers each event once per consumer (idempotent on the event id), so
a counter moves once per sale, and back once when a counted sale is cancelled (an order
cancelled after it was paid, or a cash-on-delivery order cancelled).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from live.auctions.views import for_viewers
from live.giveaways.public import entries_count
from live.hub.context import HubContext, live_room, staff_room, user_room
from live.hub.throttle import Throttle
from live.sessions.models import LiveProduct, LiveSession, LiveStatus
from storage.bus.port import Event

CONSUMER = "live-hub"
PATTERNS = (
    "stock.changed",
    "order.paid",
    "order.created",
    "order.cancelled",
    "order.expired",
    "cart.updated",
    "live.started",
    "live.ended",
    "flash.*",
    "voucher.dropped",
    "voucher.claimed",
    "auction.started",
    "auction.ended",
    "giveaway.*",
)
FLASH_EVENTS = frozenset(
    {"flash.scheduled", "flash.started", "flash.ended", "flash.claimed", "flash.returned"}
)
GIVEAWAY_EVENTS = frozenset({"giveaway.started", "giveaway.drawn", "giveaway.cancelled"})
SALES_TTL = 7 * 24 * 3600.0
# A unit's stock is pushed at most this often (the newest figure; see live/hub/throttle.py).
STOCK_PUSH_INTERVAL = 0.25


async def sales(hub: HubContext, live_session_id: str) -> dict[str, int]:
    """The session's sales so far: orders and revenue (VND)."""
    orders = await hub.cache.get(f"sales:{live_session_id}:orders")
    revenue = await hub.cache.get(f"sales:{live_session_id}:revenue")
    return {"orders": int(orders or 0), "revenue": int(revenue or 0)}


class Bridge:
    def __init__(self, hub: HubContext) -> None:
        self._hub = hub
        self._stock = Throttle(self._stock_changed, STOCK_PUSH_INTERVAL)
        self._voucher_claims = Throttle(self._voucher_claimed, STOCK_PUSH_INTERVAL)
        self._giveaway_entries = Throttle(self._giveaway_entered, STOCK_PUSH_INTERVAL)

    async def close(self) -> None:
        await self._stock.close()
        await self._voucher_claims.close()
        await self._giveaway_entries.close()

    async def handle(self, event: Event) -> None:
        data = event.data
        match event.type:
            case "stock.changed":
                await self._stock.offer(data["variant_id"], data)
            case "order.paid":
                await self._hub.emit("order:paid", _order(data), user_room(data["buyer_id"]))
                await self._count_sale(data)
            case "order.created" if data.get("payment_method") == "cod":
                await self._count_sale(data)
            case "order.cancelled" | "order.expired" if data.get("previous_status") not in (
                None,
                "pending_payment",
            ):
                await self._count_sale(data, -1)
            case "cart.updated":
                await self._hub.emit("cart:updated", {}, user_room(data["user_id"]))
            case "live.started" | "live.ended":
                status = LiveStatus.LIVE if event.type == "live.started" else LiveStatus.ENDED
                live_session_id = data["live_session_id"]
                await self._hub.emit(
                    "session:status",
                    {"live_session_id": live_session_id, "status": status.value},
                    live_room(live_session_id),
                )
                if status == LiveStatus.ENDED:  # players stop waiting for the picture
                    ended = {"live_session_id": live_session_id, "reason": data.get("reason")}
                    await self._hub.emit("stream:ended", ended, live_room(live_session_id))
            case "auction.started" | "auction.ended":
                name = event.type.replace(".", ":", 1)
                await self._hub.emit(name, for_viewers(data), live_room(data["live_session_id"]))
            case "voucher.dropped":
                await self._hub.emit("voucher:dropped", data, live_room(data["live_session_id"]))
            case "voucher.claimed":
                await self._voucher_claims.offer(data["voucher_id"], data)
            case "giveaway.entered":
                await self._giveaway_entries.offer(data["giveaway_id"], data)
            case giveaway if giveaway in GIVEAWAY_EVENTS:
                name = giveaway.replace(".", ":", 1)
                await self._hub.emit(name, data, live_room(data["live_session_id"]))
            case flash if flash in FLASH_EVENTS and data.get("live_session_id"):
                name = flash.replace(".", ":", 1)
                await self._hub.emit(name, data, live_room(data["live_session_id"]))

    async def _voucher_claimed(self, data: dict[str, Any]) -> None:
        await self._hub.emit("voucher:claimed", data, live_room(data["live_session_id"]))

    async def _giveaway_entered(self, data: dict[str, Any]) -> None:
        """The number of entries so far, counted when pushed (at most 4 a second)."""
        async with self._hub.sessions() as session:
            count = await entries_count(session, data["giveaway_id"])
        entered = {**data, "entries_count": count}
        await self._hub.emit("giveaway:entered", entered, live_room(data["live_session_id"]))

    async def _stock_changed(self, data: dict[str, Any]) -> None:
        """To every session showing the product (not ended), with what is left of it in
        that session: the product's stock capped by the session's own allocation."""
        product_id = data["product_id"]
        async with self._hub.sessions() as session:
            showing = (
                await session.scalars(
                    select(LiveProduct.live_session_id)
                    .join(LiveSession, LiveSession.id == LiveProduct.live_session_id)
                    .where(
                        LiveProduct.product_id == product_id,
                        LiveSession.status != LiveStatus.ENDED,
                    )
                )
            ).all()
        for live_session_id in showing:
            items = await self._hub.live_sessions.showcase(live_session_id)
            item = next((i for i in items if i.product_id == product_id), None)
            if item is None:  # taken off show meanwhile
                continue
            change = {
                "live_session_id": live_session_id,
                "product_id": product_id,
                "variant_id": data["variant_id"],
                "available": item.available,
                "variant_available": data["available"],
            }
            await self._hub.emit("stock:changed", change, live_room(live_session_id))

    async def _count_sale(self, data: dict[str, Any], sign: int = 1) -> None:
        """Add a sale to the session's figures (sign -1: take a cancelled one back)."""
        live_session_id = data.get("live_session_id")
        if not live_session_id:
            return
        prefix = f"sales:{live_session_id}"
        orders = await self._hub.cache.incr(f"{prefix}:orders", sign, SALES_TTL)
        revenue = await self._hub.cache.incr(f"{prefix}:revenue", sign * data["total"], SALES_TTL)
        figures = {"live_session_id": live_session_id, "orders": orders, "revenue": revenue}
        await self._hub.emit("sales:updated", figures, staff_room(live_session_id))


def _order(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": data["order_id"],
        "code": data["code"],
        "status": data["status"],
        "total": data["total"],
        "live_session_id": data.get("live_session_id"),
    }
