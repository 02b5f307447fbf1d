"""A session's own stock: units set aside for the stream (`live_stock`), counted as they
are bought and given back when their order is cancelled or expires.

Taking happens inside the checkout's transaction (commerce calls `take` through its
`LiveAllocations` port), as one conditional UPDATE of `live_sold`, so a session never
sells past its allocation however many buyers race. Each take is recorded as a
`LiveAllocation` row. Giving back is driven by the `order.cancelled` and
`order.expired` events: the row's `returned_at` is set by a conditional UPDATE and the
counters move only when that UPDATE matched, so the units come back exactly once even
when two processes handle copies of the same event. Units a flash-sale claim took go
back to the flash sale as well (and to the buyer's per-buyer allowance), so a sale
still running can sell them again; viewers hear of it as `flash.returned`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import Row, and_, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from live.sessions.models import (
    FlashClaim,
    FlashSale,
    LiveAllocation,
    LiveProduct,
    LiveStatus,
)
from storage.bus.port import Event
from storage.outbox import add_event
from storage.sql.statements import Statements

CONSUMER = "live-allocations"
PATTERNS = ("order.cancelled", "order.expired")

# Plain SQL, run in the general checkout's transaction or on the express checkout's
# connection (storage.sql.statements). "Open": the session has not ended.
_TAKE = text(
    "UPDATE live_products SET live_sold = live_sold + :quantity"
    " WHERE live_session_id = :live_session_id AND product_id = :product_id"
    " AND (live_stock IS NULL OR live_sold + :quantity <= live_stock)"
    " AND EXISTS (SELECT 1 FROM live_sessions AS s"
    " WHERE s.id = live_products.live_session_id AND s.status <> :ended)"
    " RETURNING product_id"
)
_LIMITED = text(  # on show in an open session, with a limited allocation
    "SELECT live_stock FROM live_products"
    " WHERE live_session_id = :live_session_id AND product_id = :product_id"
    " AND live_stock IS NOT NULL AND EXISTS (SELECT 1 FROM live_sessions AS s"
    " WHERE s.id = live_products.live_session_id AND s.status <> :ended)"
)
_LINK = text(
    "UPDATE live_allocations SET flash_sale_id = :flash_sale_id WHERE order_id = :order_id"
)
_RECORD = text(
    "INSERT INTO live_allocations (order_id, product_id, live_session_id, buyer_id, quantity)"
    " VALUES (:order_id, :product_id, :live_session_id, :buyer_id, :quantity)"
)


class LiveSessionAllocations:
    """Implements `commerce.pricing.LiveAllocations`; plugged in by the composition root."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        on_flash_returned: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_flash_returned = on_flash_returned

    async def take(
        self,
        db: Statements,
        order_id: str,
        buyer_id: str,
        live_session_id: str,
        product_id: str,
        quantity: int,
    ) -> bool:
        """Count the units while the session has not ended. A product not on show (or a
        session that ended) has no allocation to respect: the sale is a regular one."""
        unit = {"live_session_id": live_session_id, "product_id": product_id}
        open_unit = {**unit, "ended": LiveStatus.ENDED.value}
        if await db.value(_TAKE, {**open_unit, "quantity": quantity}) is None:
            return await db.value(_LIMITED, open_unit) is None
        await db.execute(
            _RECORD, {**unit, "order_id": order_id, "buyer_id": buyer_id, "quantity": quantity}
        )
        return True

    async def on_order_closed(self, event: Event) -> None:
        """Bus handler for `order.cancelled` / `order.expired`."""
        if not event.data.get("live_session_id"):
            return
        async with self._sessions.begin() as session:
            returned = await give_back(session, event.data["order_id"])
        if self._on_flash_returned is not None:  # after commit: the gate reads the database
            for flash_sale_id in {r.flash_sale_id for r in returned if r.flash_sale_id}:
                await self._on_flash_returned(flash_sale_id)


async def link_flash_sale(db: Statements, order_id: str, flash_sale_id: str) -> None:
    """Mark the units of a claim's order as the flash sale's, so they return to it."""
    await db.execute(_LINK, {"order_id": order_id, "flash_sale_id": flash_sale_id})


async def give_back(session: AsyncSession, order_id: str) -> list[Row]:
    """Return the order's units to the session (and flash sale) once; returns what went
    back (live session, product, buyer, quantity, flash sale), nothing the second time."""
    returned = (
        await session.execute(
            update(LiveAllocation)
            .where(LiveAllocation.order_id == order_id, LiveAllocation.returned_at.is_(None))
            .values(returned_at=datetime.now(UTC))
            .returning(
                LiveAllocation.live_session_id,
                LiveAllocation.product_id,
                LiveAllocation.buyer_id,
                LiveAllocation.quantity,
                LiveAllocation.flash_sale_id,
            )
        )
    ).all()
    for row in sorted(returned, key=lambda r: r.product_id):  # fixed order: no deadlocks
        await session.execute(
            update(LiveProduct)
            .where(
                LiveProduct.live_session_id == row.live_session_id,
                LiveProduct.product_id == row.product_id,
                LiveProduct.live_sold >= row.quantity,
            )
            .values(live_sold=LiveProduct.live_sold - row.quantity)
        )
        if row.flash_sale_id is not None:
            await _return_to_flash_sale(session, row.flash_sale_id, row.buyer_id, row.quantity)
    return list(returned)


async def _return_to_flash_sale(
    session: AsyncSession, flash_sale_id: str, buyer_id: str, quantity: int
) -> None:
    flash = (
        await session.execute(
            update(FlashSale)
            .where(FlashSale.id == flash_sale_id, FlashSale.sold >= quantity)
            .values(sold=FlashSale.sold - quantity)
            .returning(FlashSale.live_session_id, FlashSale.quantity, FlashSale.sold)
        )
    ).one_or_none()
    await session.execute(
        update(FlashClaim)
        .where(
            and_(
                FlashClaim.flash_sale_id == flash_sale_id,
                FlashClaim.buyer_id == buyer_id,
                FlashClaim.quantity >= quantity,
            )
        )
        .values(quantity=FlashClaim.quantity - quantity)
    )
    if flash is not None:
        add_event(
            session,
            "flash.returned",
            {
                "id": flash_sale_id,
                "live_session_id": flash.live_session_id,
                "returned": quantity,
                "sold": flash.sold,
                "quantity": flash.quantity,
                "remaining": flash.quantity - flash.sold,
            },
        )
