"""Keeps the stock gate's view of every flash sale true to the database.

Claims are decided by the gate (`storage.gate`): one atomic step per attempt on a
shared counter, so a sold-out sale, a buyer at the limit or a sale outside its window
is refused without the database. Only winners write their order, and the database
stays the source of truth; this module mends the gate wherever the two can disagree:

- **First use** (and after Redis lost the keys): the gate is loaded from the database
  (`remaining = quantity - sold`, each buyer's count from `flash_claims`).
- **A winner the database refused** (the sale was cancelled, or the gate thought more
  was left than is): its units go back at once, and the gate is resynchronised.
- **A process that died between deciding and writing** leaves a pending attempt. A
  pending attempt older than `pending_seconds` whose order does not exist is dropped
  and its units counted as left again; the claim's own write refuses to take units for
  a decision older than half that (`fresh_for`, judged when it holds the row lock), so
  a late write cannot sell a unit the gatekeeper has given back. The other half is the
  margin for clocks that differ between processes.
- **Units returned** by a cancelled or expired order: the gate is resynchronised.

A resynchronisation reads the sale under its row lock (`SELECT ... FOR UPDATE`), so
no claim writes meanwhile: left = quantity - sold - what is pending, exactly. Every
process checks the running sales every `interval` seconds (`tick`) and resynchronises
one only when its pending attempts are stale or the gate shows fewer units than the
database; any number of processes may do so, each under the lock.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.orders.models import Order
from live.sessions.models import FlashClaim, FlashSale, LiveSession
from storage.gate import Decision, StockGate, Verdict, Window
from storage.periodic import Periodic
from storage.single_flight import SingleFlight

log = logging.getLogger("streamcart.flash")
MAX_CACHED_TERMS = 10_000
SOLD_OUT_HINT_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class SaleTerms:
    """What never changes about a flash sale, cached per process."""

    id: str
    live_session_id: str
    shop_id: str
    per_buyer_limit: int
    starts_at: datetime


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def window_of(flash: FlashSale) -> Window:
    closes = flash.ends_at
    if flash.cancelled_at is not None:
        closes = min(closes, flash.cancelled_at)
    return Window(
        flash.quantity, flash.per_buyer_limit, epoch_ms(flash.starts_at), epoch_ms(closes)
    )


class FlashGatekeeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gate: StockGate,
        pending_seconds: float = 30.0,
        interval: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._gate = gate
        self.pending_ms = int(pending_seconds * 1000)
        self.fresh_for = timedelta(seconds=pending_seconds / 2)
        self._terms: dict[str, SaleTerms] = {}
        self._sold_out: dict[str, tuple[float, int]] = {}  # until (monotonic), units left
        self._loads: SingleFlight[Any] = SingleFlight()
        self._periodic = Periodic("flash-gatekeeper", interval, self.tick)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def terms(self, flash_id: str) -> SaleTerms | None:
        """The sale's fixed terms: from memory after the first call (None: no such sale)."""
        terms = self._terms.get(flash_id)
        if terms is None:
            terms = await self._loads.run("terms:" + flash_id, lambda: self._load_terms(flash_id))
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

    async def take(
        self, flash_id: str, buyer_id: str, quantity: int, attempt: str, now: datetime
    ) -> Decision:
        """The gate's decision; the sale is loaded into the gate on first use. Once the
        gate said sold out, this process says so itself for SOLD_OUT_HINT_SECONDS: a
        refusal that was true a moment ago, without a round trip to Redis each."""
        hint = self._sold_out.get(flash_id)
        if hint is not None and hint[1] < quantity and hint[0] > time.monotonic():
            return Decision(Verdict.SOLD_OUT, hint[1], 0)
        decision = await self._gate.take(flash_id, buyer_id, quantity, attempt, epoch_ms(now))
        if decision.verdict is Verdict.UNKNOWN:
            await self.load(flash_id)
            decision = await self._gate.take(flash_id, buyer_id, quantity, attempt, epoch_ms(now))
        if decision.verdict is Verdict.SOLD_OUT:
            self._sold_out[flash_id] = (time.monotonic() + SOLD_OUT_HINT_SECONDS, decision.left)
        return decision

    async def load(self, flash_id: str) -> None:
        """Put the sale into the gate unless it holds it already (once per process at a
        time: a burst of first claims shares one load)."""
        await self._loads.run(
            "load:" + flash_id, lambda: self.resync(flash_id, only_if_absent=True)
        )

    async def written(self, flash_id: str, attempt: str) -> None:
        await self._gate.settle(flash_id, attempt)

    async def not_written(self, flash_id: str, attempt: str, *, resync: bool) -> None:
        """The winner's write failed: its units go back; `resync` when the database
        disagreed with the gate (sold out or ended there)."""
        await self._gate.give_back(flash_id, attempt)
        self._sold_out.pop(flash_id, None)
        if resync:
            await self.resync(flash_id)

    async def resync(self, flash_id: str, *, only_if_absent: bool = False) -> None:
        """Set the gate from the database, under the sale's row lock (see the module)."""
        self._sold_out.pop(flash_id, None)
        async with self._sessions.begin() as session:
            flash = await session.scalar(
                select(FlashSale).where(FlashSale.id == flash_id).with_for_update()
            )
            if flash is None:
                return
            if (cached := self._terms.get(flash_id)) is not None:
                self._terms[flash_id] = replace(
                    cached, per_buyer_limit=flash.per_buyer_limit, starts_at=flash.starts_at
                )
            state = await self._gate.state(flash_id)
            if state is not None and only_if_absent:
                return
            pending = {} if state is None else state.pending
            written = set()
            if pending:
                written = set(await session.scalars(select(Order.id).where(Order.id.in_(pending))))
            stale_before = epoch_ms(datetime.now(UTC)) - self.pending_ms
            void = [a for a, p in pending.items() if a not in written and p.at_ms < stale_before]
            claims = await session.execute(
                select(FlashClaim.buyer_id, FlashClaim.quantity).where(
                    FlashClaim.flash_sale_id == flash_id, FlashClaim.quantity > 0
                )
            )
            holders = {buyer_id: quantity for buyer_id, quantity in claims}
            await self._gate.resync(
                flash_id,
                window_of(flash),
                flash.sold,
                holders,
                [*written, *void],
                only_if_absent=only_if_absent,
            )
        if void:
            log.warning(
                "flash claims dropped: decided but never written",
                extra={"flash_sale_id": flash_id, "attempts": len(void)},
            )

    async def tick(self) -> int:
        """Resynchronise every running sale whose gate has stale pending attempts or
        shows fewer units than the database; returns how many it resynchronised."""
        now = datetime.now(UTC)
        async with self._sessions() as session:
            running = (
                await session.execute(
                    select(FlashSale.id, FlashSale.quantity - FlashSale.sold).where(
                        FlashSale.ends_at > now - timedelta(milliseconds=self.pending_ms),
                        FlashSale.cancelled_at.is_(None),
                    )
                )
            ).all()
        mended = 0
        stale_before = epoch_ms(now) - self.pending_ms
        for flash_id, remaining in running:
            state = await self._gate.state(flash_id)
            if state is None:
                continue
            pending = sum(p.quantity for p in state.pending.values())
            stale = any(p.at_ms < stale_before for p in state.pending.values())
            if stale or state.left + pending < remaining:
                await self.resync(flash_id)
                mended += 1
        return mended
