"""A voucher-claim winner's write: the voucher's count, the buyer's count and the claim.

The gate decided the winner; the database stays the judge. In one savepoint of a
transaction shared with the winners queued at the same moment (`GroupCommit`: the
voucher's row is locked once per batch, not once per winner):

1. a conditional UPDATE counts the claim: `claimed = claimed + 1` only while
   `claimed < total`, the drop's window is open, the voucher not withdrawn and the
   gate's decision fresh (on PostgreSQL by its own clock once the row lock is held);
2. under that row lock, the buyer's claims are counted against `per_buyer_limit`;
3. the claim is inserted, with the gate's attempt id as its id, and `voucher.claimed`
   staged for the room's counter.

A refusal at any step rolls the savepoint back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.orders.staging import retrying
from commerce.vouchers.models import Voucher, VoucherClaim
from live.stock_keeper import FRESH_ON_POSTGRES
from live.vouchers.gatekeeper import DropTerms
from storage.gate import Verdict
from storage.outbox import add_event
from storage.sql import UtcDateTime
from storage.sql.group_commit import GroupCommit
from storage.web import Problem


def _take(guard: str) -> Any:
    """The conditional UPDATE, with `guard` (our own SQL, no data) added to its WHERE."""
    return text(
        "UPDATE vouchers SET claimed = claimed + 1"  # noqa: S608
        " WHERE id = :id AND claimed < total AND NOT disabled"
        " AND dropped_at <= :now AND claims_close_at > :now AND ends_at > :now"
        f"{guard} RETURNING total, claimed, per_buyer_limit"
    ).bindparams(bindparam("now", type_=UtcDateTime()))


_TAKE = _take("")
_TAKE_ON_POSTGRES = _take(FRESH_ON_POSTGRES)


@dataclass(frozen=True, slots=True)
class Claim:
    buyer_id: str
    terms: DropTerms
    claim_id: str  # the gate's attempt id
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    claim_id: str
    claimed_at: datetime
    remaining: int


class VoucherClaimWriter:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], fresh_for: timedelta) -> None:
        self._fresh_for = fresh_for
        self._group: GroupCommit[AsyncSession] = GroupCommit(
            sessions.begin, lambda session: session.begin_nested(), retry=retrying
        )

    async def write(self, claim: Claim) -> Claimed:
        """The claim written; a refusal (`Problem`) when the database disagrees."""
        return await retrying(lambda: self._group.run(lambda session: self._write(session, claim)))

    async def _write(self, session: AsyncSession, claim: Claim) -> Claimed:
        now = datetime.now(UTC)
        on_postgres = session.get_bind().dialect.name == "postgresql"
        if not on_postgres and now - claim.decided_at >= self._fresh_for:  # our clock
            raise timed_out()
        taken = (
            await session.execute(
                _TAKE_ON_POSTGRES if on_postgres else _TAKE,
                {
                    "id": claim.terms.id,
                    "now": now,
                    "decided_at": claim.decided_at,
                    "fresh": self._fresh_for.total_seconds(),
                },
            )
        ).first()
        if taken is None:
            raise await _why_not_taken(session, claim, now)
        held = await session.scalar(
            select(func.count()).where(
                VoucherClaim.voucher_id == claim.terms.id,
                VoucherClaim.buyer_id == claim.buyer_id,
            )
        )
        if held >= taken.per_buyer_limit:
            raise refusal(Verdict.OVER_LIMIT, claim.terms)
        session.add(
            VoucherClaim(
                id=claim.claim_id,
                voucher_id=claim.terms.id,
                buyer_id=claim.buyer_id,
                claimed_at=now,
            )
        )
        remaining = taken.total - taken.claimed
        add_event(
            session,
            "voucher.claimed",
            {
                "voucher_id": claim.terms.id,
                "live_session_id": claim.terms.dropped_in,
                "claimed": taken.claimed,
                "total": taken.total,
                "remaining": remaining,
            },
        )
        return Claimed(claim.claim_id, now, remaining)


def refusal(verdict: Verdict, terms: DropTerms) -> Problem:
    """The answer to a refused claim, whether the gate or the database refused it."""
    match verdict:
        case Verdict.CLOSED | Verdict.NOT_OPEN:
            return Problem(409, "voucher-claims-closed", "Claims for this voucher are closed.")
        case Verdict.OVER_LIMIT:
            return Problem(
                409,
                "voucher-limit-reached",
                f"At most {terms.per_buyer_limit} of this voucher per buyer.",
                per_buyer_limit=terms.per_buyer_limit,
            )
        case Verdict.SOLD_OUT:
            return Problem(409, "voucher-all-claimed", "Every voucher of this drop is claimed.")
    raise AssertionError(f"no refusal for {verdict}")


def timed_out() -> Problem:
    return Problem(
        503,
        "voucher-claim-timed-out",
        "The claim took too long to be written; try again.",
        headers={"Retry-After": "1"},
    )


async def _why_not_taken(session: AsyncSession, claim: Claim, now: datetime) -> Problem:
    """The conditional UPDATE took nothing: say why, judged at the same instant."""
    voucher = await session.get(Voucher, claim.terms.id, populate_existing=True)
    assert voucher is not None  # vouchers are never deleted
    closes = min(voucher.claims_close_at or now, voucher.ends_at)
    if voucher.disabled or closes <= now:
        return refusal(Verdict.CLOSED, claim.terms)
    if voucher.claimed >= voucher.total:
        return refusal(Verdict.SOLD_OUT, claim.terms)
    return timed_out()  # open, with claims left: the decision was too old
