"""Spending a claimed voucher at checkout, and getting it back.

The checkout checks the claim (the buyer's own, unused, the voucher within its
validity and not disabled, the shop's order meeting the minimum, the session matching
when the voucher is restricted to one), stages the discounted order, and marks the
claim used by a conditional UPDATE (`used_at IS NULL`) in the same transaction: of two
checkouts racing with one claim, the second finds it used and rolls back whole.

When the order is cancelled or expires (`order.cancelled`, `order.expired`), the claim
is given back by another conditional UPDATE (`used_at IS NOT NULL` for that order), so
a duplicated event returns it once; it can then be spent again while the voucher is
valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.vouchers.discount import Applied, discount
from commerce.vouchers.models import Voucher, VoucherClaim
from storage.bus.port import Event
from storage.web import Problem

CONSUMER = "voucher-returns"
PATTERNS = ("order.cancelled", "order.expired")


def usable_problem(voucher: Voucher, now: datetime) -> Problem | None:
    """Why the voucher cannot be spent now, or None."""
    if voucher.disabled:
        return Problem(409, "voucher-disabled", "This voucher was withdrawn by the shop.")
    if now < voucher.starts_at:
        return Problem(
            409,
            "voucher-not-started",
            "This voucher is not valid yet.",
            starts_at=voucher.starts_at.isoformat(),
        )
    if now >= voucher.ends_at:
        return Problem(409, "voucher-expired", "This voucher has expired.")
    return None


async def applicable(
    session: AsyncSession,
    claim_id: str,
    buyer_id: str,
    orders: Mapping[str, tuple[int, str | None]],
) -> Applied:
    """The discount `claim_id` gives this checkout; `orders`: each shop's order of it as
    (subtotal, live session or None). Refuses with the reason otherwise."""
    row = (
        await session.execute(
            select(VoucherClaim, Voucher)
            .join(Voucher, Voucher.id == VoucherClaim.voucher_id)
            .where(VoucherClaim.id == claim_id, VoucherClaim.buyer_id == buyer_id)
        )
    ).one_or_none()
    if row is None:
        raise Problem(404, "voucher-claim-not-found", "You hold no such voucher.")
    claim, voucher = row
    if claim.used_at is not None:
        raise used()
    if (problem := usable_problem(voucher, datetime.now(UTC))) is not None:
        raise problem
    if voucher.shop_id not in orders:
        raise Problem(
            409,
            "voucher-wrong-shop",
            "This voucher is for another shop than the one you are buying from.",
            shop_id=voucher.shop_id,
        )
    subtotal, live_session_id = orders[voucher.shop_id]
    if subtotal < voucher.min_order:
        raise Problem(
            409,
            "voucher-min-order",
            f"This voucher needs an order of at least {voucher.min_order} VND from the shop.",
            min_order=voucher.min_order,
            subtotal=subtotal,
        )
    if voucher.live_session_id is not None and voucher.live_session_id != live_session_id:
        raise Problem(
            409,
            "voucher-wrong-session",
            "This voucher is only for what you buy in its live session.",
            live_session_id=voucher.live_session_id,
        )
    amount = discount(voucher.kind, voucher.value, voucher.max_discount, subtotal)
    return Applied(claim.id, voucher.id, voucher.code, voucher.shop_id, amount)


async def spend(session: AsyncSession, applied: Applied, buyer_id: str, order_id: str) -> None:
    """Mark the claim used by `order_id`, unless a racing checkout did first (409)."""
    spent = await session.scalar(
        update(VoucherClaim)
        .where(
            VoucherClaim.id == applied.claim_id,
            VoucherClaim.buyer_id == buyer_id,
            VoucherClaim.used_at.is_(None),
        )
        .values(used_at=datetime.now(UTC), order_id=order_id)
        .returning(VoucherClaim.voucher_id)
    )
    if spent is None:
        raise used()
    await session.execute(update(Voucher).where(Voucher.id == spent).values(used=Voucher.used + 1))


async def give_back(session: AsyncSession, order_id: str) -> str | None:
    """Return the claim `order_id` spent, once: the voucher's id, or None."""
    voucher_id = await session.scalar(
        update(VoucherClaim)
        .where(VoucherClaim.order_id == order_id, VoucherClaim.used_at.is_not(None))
        .values(used_at=None, order_id=None, returned_at=datetime.now(UTC))
        .returning(VoucherClaim.voucher_id)
    )
    if voucher_id is not None:
        await session.execute(
            update(Voucher)
            .where(Voucher.id == voucher_id, Voucher.used > 0)
            .values(used=Voucher.used - 1)
        )
    return voucher_id


class VoucherReturns:
    """The bus consumer that gives a cancelled or expired order's voucher back."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def on_order_closed(self, event: Event) -> None:
        async with self._sessions.begin() as session:
            await give_back(session, event.data["order_id"])


def used() -> Problem:
    return Problem(409, "voucher-used", "This voucher has already been used.")
