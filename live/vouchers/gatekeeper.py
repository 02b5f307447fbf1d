"""Voucher drops in the stock gate: each dropped voucher is a stock (`voucher:<id>`)
whose units are its claims, open from the drop until its claim window or validity
ends, `per_buyer_limit` each. `live.stock_keeper` keeps the gate true to the database;
this module says what a voucher is there (`VoucherStock`) and caches what no longer
changes once it is dropped (`DropTerms`), so a refused claim reads nothing."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.vouchers.models import Voucher, VoucherClaim
from live.stock_keeper import StockKeeper, Truth, epoch_ms
from storage.gate import StockGate, Window
from storage.single_flight import SingleFlight

PREFIX = "voucher:"
MAX_CACHED_TERMS = 10_000


def voucher_stock(voucher_id: str) -> str:
    """The stock gate's name for a voucher's claims."""
    return PREFIX + voucher_id


@dataclass(frozen=True, slots=True)
class DropTerms:
    """What a dropped voucher's claims need, cached per process."""

    id: str
    code: str
    shop_id: str
    dropped_in: str
    per_buyer_limit: int


def window_of(voucher: Voucher) -> Window:
    """Open from the drop until the claim window or the validity ends; never open when
    not dropped or withdrawn."""
    if voucher.dropped_at is None or voucher.claims_close_at is None:
        return Window(voucher.total, voucher.per_buyer_limit, 0, 0)
    opens = epoch_ms(voucher.dropped_at)
    closes = opens if voucher.disabled else epoch_ms(min(voucher.claims_close_at, voucher.ends_at))
    return Window(voucher.total, voucher.per_buyer_limit, opens, closes)


class VoucherStock:
    """A voucher's claims as the database has them (`StockSource`); an attempt's id is
    the id of the claim it writes."""

    async def truth(self, session: AsyncSession, stock: str) -> Truth | None:
        voucher_id = stock.removeprefix(PREFIX)
        voucher = await session.scalar(
            select(Voucher).where(Voucher.id == voucher_id).with_for_update()
        )
        if voucher is None:
            return None
        rows = await session.execute(
            select(VoucherClaim.buyer_id).where(VoucherClaim.voucher_id == voucher_id)
        )
        holders: dict[str, int] = {}
        for (buyer_id,) in rows:
            holders[buyer_id] = holders.get(buyer_id, 0) + 1
        return Truth(window_of(voucher), voucher.claimed, holders)

    async def written(self, session: AsyncSession, attempts: Collection[str]) -> set[str]:
        return set(
            await session.scalars(select(VoucherClaim.id).where(VoucherClaim.id.in_(attempts)))
        )

    async def running(self, session: AsyncSession, since: datetime) -> list[tuple[str, int]]:
        rows = await session.execute(
            select(Voucher.id, Voucher.total - Voucher.claimed).where(
                Voucher.claims_close_at > since,
                Voucher.ends_at > since,
                Voucher.disabled.is_(False),
            )
        )
        return [(voucher_stock(voucher_id), left) for voucher_id, left in rows]


class VoucherGatekeeper(StockKeeper):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gate: StockGate,
        pending_seconds: float = 30.0,
        interval: float = 1.0,
    ) -> None:
        self._terms: dict[str, DropTerms] = {}
        self._term_loads: SingleFlight[DropTerms | None] = SingleFlight()
        super().__init__(
            "voucher-gatekeeper", sessions, gate, VoucherStock(), pending_seconds, interval
        )

    async def terms(self, voucher_id: str) -> DropTerms | None:
        """The dropped voucher's terms: from memory after the first call (None: no such
        voucher, or not dropped yet, which is not cached)."""
        terms = self._terms.get(voucher_id)
        if terms is None:
            terms = await self._term_loads.run(voucher_id, lambda: self._load(voucher_id))
        return terms

    async def _load(self, voucher_id: str) -> DropTerms | None:
        async with self._sessions() as session:
            voucher = await session.get(Voucher, voucher_id)
        if voucher is None or voucher.dropped_in is None:
            return None
        terms = DropTerms(
            voucher.id, voucher.code, voucher.shop_id, voucher.dropped_in, voucher.per_buyer_limit
        )
        if len(self._terms) >= MAX_CACHED_TERMS:
            self._terms.clear()
        self._terms[voucher_id] = terms
        return terms
