"""A flash-sale winner's write: the units, the buyer's count and the order, together.

The gate decided the winner; the database stays the judge. In one savepoint of a
transaction shared with the winners queued at the same moment (`GroupCommit`: the
sale's and the variant's rows are locked once per batch, not once per winner):

1. a conditional UPDATE takes the units in the database too: `sold = sold + q` only
   while `sold + q <= quantity`, the window is open and the gate's decision is fresh
   (on PostgreSQL by its own clock once the row lock is held, so a write that comes
   after the gatekeeper gave a dead process's units back cannot sell them again);
2. an upsert counts the buyer's units within the per-buyer limit
   (`ON CONFLICT DO UPDATE ... WHERE`);
3. the order is placed at the flash price: on PostgreSQL by the express checkout on an
   asyncpg connection (its one statement also writes `flash.claimed`), elsewhere by
   the general checkout in the SQLAlchemy session;
4. the order's live allocation is marked as the flash sale's, so cancelled units
   return to it.

A refusal at any step rolls the savepoint back. The statements are plain SQL, run alike
on either connection (`storage.sql.statements`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Integer, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.orders.checkout import CheckoutService, Line, PlacedOrder
from commerce.orders.express import ExpressCheckout
from commerce.orders.models import PaymentMethod
from commerce.orders.staging import retrying
from live.flash.gatekeeper import SaleTerms
from live.flash.phases import FlashPhase, phase
from live.sessions.allocations import link_flash_sale
from live.stock_keeper import FRESH_ON_POSTGRES
from storage.bus.port import Event
from storage.gate import Verdict
from storage.outbox import stage_event
from storage.sql import UtcDateTime
from storage.sql.group_commit import GroupCommit
from storage.sql.statements import OnDriver, OnSession, Statements
from storage.web import Problem


def _take(guard: str) -> Any:
    """The conditional UPDATE, with `guard` (our own SQL, no data) added to its WHERE."""
    return text(
        "UPDATE flash_sales SET sold = sold + :quantity"  # noqa: S608
        " WHERE id = :id AND sold + :quantity <= quantity"
        " AND starts_at <= :now AND ends_at > :now AND cancelled_at IS NULL"
        f"{guard} RETURNING product_id, variant_id, flash_price, quantity, sold, per_buyer_limit"
    ).bindparams(bindparam("now", type_=UtcDateTime()))


_TAKE = _take("")
_TAKE_ON_POSTGRES = _take(FRESH_ON_POSTGRES)
_COUNT_FOR_BUYER = text(
    "INSERT INTO flash_claims (flash_sale_id, buyer_id, quantity)"
    " VALUES (:id, :buyer_id, :quantity)"
    " ON CONFLICT (flash_sale_id, buyer_id) DO UPDATE"
    " SET quantity = flash_claims.quantity + excluded.quantity"
    " WHERE flash_claims.quantity + excluded.quantity <= :per_buyer_limit"
    " RETURNING quantity"
)
_SALE = text(
    "SELECT quantity, sold, starts_at, ends_at, cancelled_at FROM flash_sales WHERE id = :id"
).columns(
    quantity=Integer,
    sold=Integer,
    starts_at=UtcDateTime(),
    ends_at=UtcDateTime(),
    cancelled_at=UtcDateTime(),
)


@dataclass(frozen=True, slots=True)
class Claim:
    buyer_id: str
    terms: SaleTerms
    quantity: int
    method: PaymentMethod
    order_id: str  # the gate's attempt id
    decided_at: datetime


Place = Callable[[Line, Event], Awaitable[PlacedOrder]]


class ClaimWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        checkout: CheckoutService,
        express: ExpressCheckout | None,
        fresh_for: timedelta,
    ) -> None:
        self._checkout = checkout
        self._express = express
        self._fresh_for = fresh_for
        self._group: GroupCommit[Any]
        if express is not None:
            self._group = GroupCommit(
                express.transaction,
                lambda connection: connection.transaction(),
                retry=retrying,
                committed=express.events_committed,
            )
        else:
            self._group = GroupCommit(
                sessions.begin, lambda session: session.begin_nested(), retry=retrying
            )

    async def write(self, claim: Claim) -> PlacedOrder:
        """The order placed; a refusal (`Problem`) when the database disagrees."""
        work = self._on_driver if self._express is not None else self._on_session
        return await retrying(lambda: self._group.run(lambda writer: work(writer, claim)))

    async def _on_session(self, session: AsyncSession, claim: Claim) -> PlacedOrder:
        async def place(line: Line, event: Event) -> PlacedOrder:
            (placed,) = await self._checkout.place_in(
                session, claim.buyer_id, claim.method, [line], order_id=claim.order_id
            )
            stage_event(session, event)
            return placed

        if datetime.now(UTC) - claim.decided_at >= self._fresh_for:  # one process: our clock
            raise timed_out()
        return await self._write(OnSession(session), _TAKE, place, claim)

    async def _on_driver(self, connection: Any, claim: Claim) -> PlacedOrder:
        assert self._express is not None
        express = self._express

        async def place(line: Line, event: Event) -> PlacedOrder:
            (placed,) = await express.place_within(
                connection,
                claim.buyer_id,
                claim.method,
                [line],
                order_id=claim.order_id,
                events=[event],
            )
            return placed

        return await self._write(OnDriver(connection), _TAKE_ON_POSTGRES, place, claim)

    async def _write(self, db: Statements, take: Any, place: Place, claim: Claim) -> PlacedOrder:
        terms, quantity, now = claim.terms, claim.quantity, datetime.now(UTC)
        taken = await db.row(
            take,
            {
                "id": terms.id,
                "quantity": quantity,
                "now": now,
                "decided_at": claim.decided_at,
                "fresh": self._fresh_for.total_seconds(),
            },
        )
        if taken is None:
            raise await _why_not_taken(db, claim, now)
        left = taken["quantity"] - taken["sold"]
        limit = taken["per_buyer_limit"]
        buyer = {"id": terms.id, "buyer_id": claim.buyer_id, "quantity": quantity}
        counted = quantity <= limit and await db.value(
            _COUNT_FOR_BUYER, {**buyer, "per_buyer_limit": limit}
        )
        if not counted:
            raise refusal(Verdict.OVER_LIMIT, left, quantity, terms)
        line = Line(
            taken["product_id"],
            quantity,
            taken["variant_id"],
            terms.live_session_id,
            taken["flash_price"],
        )
        claimed = {
            "id": terms.id,
            "live_session_id": terms.live_session_id,
            "sold": taken["sold"],
            "quantity": taken["quantity"],
            "remaining": left,
        }
        placed = await place(line, Event(type="flash.claimed", data=claimed))
        await link_flash_sale(db, placed.order.id, terms.id)
        return placed


def refusal(verdict: Verdict, remaining: int, quantity: int, terms: SaleTerms) -> Problem:
    """The answer to a refused claim, whether the gate or the database refused it."""
    match verdict:
        case Verdict.CLOSED:
            return Problem(409, "flash-ended", "This flash sale has ended.")
        case Verdict.NOT_OPEN:
            return Problem(
                409,
                "flash-not-started",
                "This flash sale has not started yet.",
                starts_at=terms.starts_at.isoformat(),
            )
        case Verdict.OVER_LIMIT:
            return Problem(
                409,
                "flash-limit-reached",
                f"At most {terms.per_buyer_limit} per buyer in this flash sale.",
                per_buyer_limit=terms.per_buyer_limit,
            )
        case Verdict.SOLD_OUT:
            remaining = max(remaining, 0)
            detail = "Sold out." if remaining == 0 else f"Only {remaining} left."
            return Problem(409, "flash-sold-out", detail, remaining=remaining, requested=quantity)
    raise AssertionError(f"no refusal for {verdict}")


def timed_out() -> Problem:
    return Problem(
        503,
        "flash-claim-timed-out",
        "The claim took too long to be written; try again.",
        headers={"Retry-After": "1"},
    )


async def _why_not_taken(db: Statements, claim: Claim, now: datetime) -> Problem:
    """The conditional UPDATE took nothing: say why, judged at the same instant."""
    sale = await db.row(_SALE, {"id": claim.terms.id})
    assert sale is not None  # flash sales are never deleted while their session lives
    flash = SimpleNamespace(**dict(sale))
    remaining = flash.quantity - flash.sold
    match phase(flash, now):
        case FlashPhase.ENDED:
            return refusal(Verdict.CLOSED, remaining, claim.quantity, claim.terms)
        case FlashPhase.SCHEDULED:
            return refusal(Verdict.NOT_OPEN, remaining, claim.quantity, claim.terms)
    if remaining >= claim.quantity:  # open, with units: the decision was too old
        return timed_out()
    return refusal(Verdict.SOLD_OUT, remaining, claim.quantity, claim.terms)
