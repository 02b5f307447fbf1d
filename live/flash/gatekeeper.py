"""Flash sales in the stock gate: each sale is a stock (its id) whose units are taken
by claims, within a window and a per-buyer limit. `live.stock_keeper` keeps the gate
true to the database; this module says what a sale is there (`FlashStock`) and caches
what never changes about a sale (its terms), so a refused claim reads nothing from
the database."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.orders.models import Order
from live.sessions.models import FlashClaim, FlashSale, LiveSession
from live.stock_keeper import StockKeeper, Truth, epoch_ms
from storage.gate import StockGate, Window
from storage.single_flight import SingleFlight

MAX_CACHED_TERMS = 10_000


@dataclass(frozen=True, slots=True)
class SaleTerms:
    """What never changes about a flash sale, cached per process."""

    id: str
    live_session_id: str
    shop_id: str
    per_buyer_limit: int
    starts_at: datetime


def window_of(flash: FlashSale) -> Window:
    closes = flash.ends_at
    if flash.cancelled_at is not None:
        closes = min(closes, flash.cancelled_at)
    return Window(
        flash.quantity, flash.per_buyer_limit, epoch_ms(flash.starts_at), epoch_ms(closes)
    )


class FlashStock:
    """A flash sale as the database has it (`StockSource`); an attempt's id is the id
    of the order it writes. Refreshes the cached terms whenever it reads a sale."""

    def __init__(self, terms: dict[str, SaleTerms]) -> None:
        self._terms = terms

    async def truth(self, session: AsyncSession, stock: str) -> Truth | None:
        flash = await session.scalar(
            select(FlashSale).where(FlashSale.id == stock).with_for_update()
        )
        if flash is None:
            return None
        if (cached := self._terms.get(stock)) is not None:
            self._terms[stock] = replace(
                cached, per_buyer_limit=flash.per_buyer_limit, starts_at=flash.starts_at
            )
        claims = await session.execute(
            select(FlashClaim.buyer_id, FlashClaim.quantity).where(
                FlashClaim.flash_sale_id == stock, FlashClaim.quantity > 0
            )
        )
        holders = {buyer_id: quantity for buyer_id, quantity in claims}
        return Truth(window_of(flash), flash.sold, holders)

    async def written(self, session: AsyncSession, attempts: Collection[str]) -> set[str]:
        return set(await session.scalars(select(Order.id).where(Order.id.in_(attempts))))

    async def running(self, session: AsyncSession, since: datetime) -> list[tuple[str, int]]:
        rows = await session.execute(
            select(FlashSale.id, FlashSale.quantity - FlashSale.sold).where(
                FlashSale.ends_at > since, FlashSale.cancelled_at.is_(None)
            )
        )
        return [(flash_id, remaining) for flash_id, remaining in rows]


class FlashGatekeeper(StockKeeper):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gate: StockGate,
        pending_seconds: float = 30.0,
        interval: float = 1.0,
    ) -> None:
        self._terms: dict[str, SaleTerms] = {}
        self._term_loads: SingleFlight[Any] = SingleFlight()
        source = FlashStock(self._terms)
        super().__init__("flash-gatekeeper", sessions, gate, source, pending_seconds, interval)

    async def terms(self, flash_id: str) -> SaleTerms | None:
        """The sale's fixed terms: from memory after the first call (None: no such sale)."""
        terms = self._terms.get(flash_id)
        if terms is None:
            terms = await self._term_loads.run(flash_id, lambda: self._load_terms(flash_id))
        return terms

    async def _load_terms(self, flash_id: str) -> SaleTerms | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(FlashSale, LiveSession.shop_id)
                    .join(LiveSession, LiveSession.id == FlashSale.live_session_id)
                    .where(FlashSale.id == flash_id)
                )
            ).one_or_none()
        if row is None:
            return None
        flash, shop_id = row
        terms = SaleTerms(
            flash.id, flash.live_session_id, shop_id, flash.per_buyer_limit, flash.starts_at
        )
        if len(self._terms) >= MAX_CACHED_TERMS:
            self._terms.clear()
        self._terms[flash_id] = terms
        return terms
