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

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import Row, and_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.pricing import LIVE_STOCK_EXHAUSTED, live_stock_exhausted
from live.sessions.models import (
    FlashClaim,
    FlashSale,
    LiveAllocation,
    LiveProduct,
    LiveSession,
    LiveStatus,
)
from live.stock_keeper import StockKeeper, Truth, epoch_ms
from storage.bus.port import Event
from storage.gate import Verdict, Window
from storage.ids import new_id
from storage.outbox import add_event
from storage.sql.statements import Statements

CONSUMER = "live-allocations"
LEASE_SECONDS = 60.0  # how long the gate may hold an allocation without the database
RENEW_SECONDS = 20.0
ANY_NUMBER = 1_000_000_000  # an allocation has no per-buyer limit
PATTERNS = ("order.cancelled", "order.expired")
ENDED_CONSUMER = "live-allocations-ended"
ENDED_PATTERNS = ("live.ended",)

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
_LIMITED = text(  # on show in an open session, with a limited allocation: what is left
    "SELECT live_stock - live_sold FROM live_products"
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


def allocation_stock(live_session_id: str, product_id: str) -> str:
    """The stock gate's name for a session's allocation of a product."""
    return f"live:{live_session_id}:{product_id}"


class AllocationStock:
    """A session's allocation of a product as the database has it (`StockSource`). It
    has no window of its own: it holds while the session has not ended, so the gate
    gets a lease of LEASE_SECONDS, renewed while the session runs (an ended session's
    lines are regular sales, which the gate must not refuse). Attempts are not
    recorded in the database: pending ones are dropped once stale, never sold twice
    (the allocation's conditional UPDATE decides)."""

    async def truth(self, session: AsyncSession, stock: str) -> Truth | None:
        _, live_session_id, product_id = stock.split(":", 2)
        row = (
            await session.execute(
                select(LiveProduct.live_stock, LiveProduct.live_sold, LiveSession.status)
                .join(LiveSession, LiveSession.id == LiveProduct.live_session_id)
                .where(
                    LiveProduct.live_session_id == live_session_id,
                    LiveProduct.product_id == product_id,
                )
                .with_for_update(of=LiveProduct)
            )
        ).one_or_none()
        if row is None:
            return None
        live_stock, live_sold, status = row
        if live_stock is None or status == LiveStatus.ENDED:  # not limited: never refuse
            return Truth(Window(0, ANY_NUMBER, 0, 0), 0, {})
        lease = epoch_ms(datetime.now(UTC)) + int(LEASE_SECONDS * 1000)
        return Truth(Window(live_stock, ANY_NUMBER, 0, lease), live_sold, {})

    async def written(self, session: AsyncSession, attempts: Collection[str]) -> set[str]:
        return set()

    async def running(self, session: AsyncSession, since: datetime) -> list[tuple[str, int]]:
        rows = await session.execute(
            select(
                LiveProduct.live_session_id,
                LiveProduct.product_id,
                LiveProduct.live_stock - LiveProduct.live_sold,
            )
            .join(LiveSession, LiveSession.id == LiveProduct.live_session_id)
            .where(LiveProduct.live_stock.is_not(None), LiveSession.status != LiveStatus.ENDED)
        )
        return [(allocation_stock(s, p), left) for s, p, left in rows]


class LiveSessionAllocations:
    """Implements `commerce.pricing.LiveAllocations`; plugged in by the composition root."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keeper: StockKeeper,
        on_flash_returned: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._keeper = keeper
        self._on_flash_returned = on_flash_returned

    @asynccontextmanager
    async def holding(
        self, buyer_id: str, wanted: Mapping[tuple[str, str], int]
    ) -> AsyncIterator[None]:
        """Take the units a checkout buys from sessions' allocations from their gate
        first: when one is sold out, 409 `live-stock-exhausted` without the database.
        The units go back if the checkout fails, and stay taken if it commits."""
        held: list[tuple[str, str]] = []
        try:
            now = datetime.now(UTC)
            for (live_session_id, product_id), quantity in sorted(wanted.items()):
                stock = allocation_stock(live_session_id, product_id)
                attempt = new_id()
                decision = await self._keeper.take(stock, buyer_id, quantity, attempt, now)
                if decision.verdict is Verdict.SOLD_OUT:
                    raise live_stock_exhausted(
                        live_session_id, product_id, quantity, available=decision.left
                    )
                if decision.verdict is Verdict.WON:
                    held.append((stock, attempt))
            yield
        except BaseException as error:
            disagreed = getattr(error, "code", None) == LIVE_STOCK_EXHAUSTED
            for stock, attempt in held:
                await asyncio.shield(self._keeper.not_written(stock, attempt, resync=disagreed))
            raise
        for stock, attempt in held:
            await self._keeper.written(stock, attempt)

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
            return await self.left(db, live_session_id, product_id) is None
        await db.execute(
            _RECORD, {**unit, "order_id": order_id, "buyer_id": buyer_id, "quantity": quantity}
        )
        return True

    async def left(self, db: Statements, live_session_id: str, product_id: str) -> int | None:
        return await db.value(
            _LIMITED,
            {
                "live_session_id": live_session_id,
                "product_id": product_id,
                "ended": LiveStatus.ENDED.value,
            },
        )

    async def on_session_ended(self, event: Event) -> None:
        """Bus handler for `live.ended`: the session's allocations stop limiting sales at
        once (lines bought after the end are regular sales), not when their lease ends."""
        live_session_id = event.data["live_session_id"]
        async with self._sessions() as session:
            products = await session.scalars(
                select(LiveProduct.product_id).where(
                    LiveProduct.live_session_id == live_session_id,
                    LiveProduct.live_stock.is_not(None),
                )
            )
            limited = list(products)
        for product_id in limited:
            await self._keeper.resync(allocation_stock(live_session_id, product_id))

    async def on_order_closed(self, event: Event) -> None:
        """Bus handler for `order.cancelled` / `order.expired`. Every order is looked up:
        one that bought from two sessions names none in its event."""
        async with self._sessions.begin() as session:
            returned = await give_back(session, event.data["order_id"])
        # After commit, the gates read the database again.
        for row in returned:
            await self._keeper.resync(allocation_stock(row.live_session_id, row.product_id))
        if self._on_flash_returned is not None:
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
