"""Prizes: each winner's zero-price order, placed at the draw and confirmed by the winner.

The order is an ordinary bank-transfer order for one unit at price 0, placed through
checkout in the draw's transaction, so its unit is reserved like any sale's (it cannot
be sold twice) and it shows in the winner's and the shop's orders. It waits in
`pending_payment` for the winner to give an address (`claim`), which marks it paid
(nothing is owed) and so sends it to the shop for fulfilment. A winner who never
claims lets the order expire at `CLAIM_WINDOW`, and the unit goes back to stock as for
any unpaid order.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.tokens import Principal
from commerce.orders.checkout import CheckoutService, Line
from commerce.orders.lifecycle import mark_paid
from commerce.orders.models import Order, OrderStatus, PaymentMethod
from commerce.payments.models import Payment, PaymentStatus
from live.giveaways.models import Giveaway, GiveawayStatus, GiveawayWinner
from storage.ids import new_id
from storage.web import Problem

log = logging.getLogger("streamcart.giveaways")
CLAIM_WINDOW = timedelta(hours=24)


async def place_prize(
    session: AsyncSession,
    checkout: CheckoutService,
    giveaway: Giveaway,
    user_id: str,
    now: datetime,
) -> str | None:
    """The prize order's id, or None when the prize could not be had any more (its
    stock ran out, the product was withdrawn): the winner still won, and is shown so."""
    order_id = new_id()
    line = Line(giveaway.product_id, 1, giveaway.variant_id, giveaway.live_session_id, 0)
    deadline = now + CLAIM_WINDOW
    try:
        async with session.begin_nested():
            await checkout.place_in(
                session,
                user_id,
                PaymentMethod.BANK_TRANSFER,
                [line],
                note=f"Giveaway prize ({giveaway.id})",
                order_id=order_id,
            )
            await session.execute(
                update(Order).where(Order.id == order_id).values(payment_deadline=deadline)
            )
            await session.execute(
                update(Payment).where(Payment.order_id == order_id).values(expires_at=deadline)
            )
    except Problem as refused:
        log.warning(
            "giveaway prize not placed: %s",
            refused.code,
            extra={"giveaway_id": giveaway.id, "user_id": user_id},
        )
        return None
    return order_id


class PrizeClaims:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def claim(self, principal: Principal, giveaway_id: str, shipping_address: str) -> str:
        """Ship the winner's prize to `shipping_address`; returns the order's id."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            winner = await session.scalar(
                select(GiveawayWinner)
                .where(
                    GiveawayWinner.giveaway_id == giveaway_id,
                    GiveawayWinner.user_id == principal.user_id,
                )
                .with_for_update()
            )
            if winner is None:
                raise await _not_a_winner(session, giveaway_id)
            if winner.order_id is None:
                raise Problem(409, "prize-unavailable", "This prize ran out before the draw.")
            if winner.claimed_at is not None:
                raise Problem(409, "prize-already-claimed", "You have claimed this prize.")
            await session.execute(
                update(Order)
                .where(Order.id == winner.order_id, Order.status == OrderStatus.PENDING_PAYMENT)
                .values(shipping_address=shipping_address)
            )
            if await mark_paid(session, winner.order_id, "giveaway prize claimed") is None:
                raise Problem(409, "prize-expired", "The time to claim this prize has passed.")
            await session.execute(
                update(Payment)
                .where(Payment.order_id == winner.order_id)
                .values(status=PaymentStatus.PAID, paid_at=now)
            )
            winner.claimed_at = now
            return winner.order_id


async def _not_a_winner(session: AsyncSession, giveaway_id: str) -> Problem:
    status = await session.scalar(select(Giveaway.status).where(Giveaway.id == giveaway_id))
    if status is None:
        return Problem(404, "giveaway-not-found", "No such giveaway.")
    if status != GiveawayStatus.DRAWN:
        return Problem(409, "giveaway-not-drawn", "The winners are not drawn yet.")
    return Problem(403, "not-a-winner", "Only a winner can claim a prize.")
