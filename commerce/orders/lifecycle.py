"""Order transitions with their consequences: history, stock, payment and events.

Every transition is a conditional UPDATE on the current status, so two workers
racing (a webhook and the expiry sweeper, a buyer and a seller cancelling) cannot
both win; the loser gets None and changes nothing. Callers pass their session and
commit: the new status, the history row, the stock movement and the outbox events
land together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.inventory import announce, settle
from commerce.orders.models import Order, OrderEvent, ReservationStatus
from commerce.orders.models import OrderStatus as S
from commerce.orders.states import sources
from commerce.payments.models import Payment, PaymentStatus
from storage.ids import new_id
from storage.outbox import add_event


@dataclass(frozen=True)
class Actor:
    """Who caused a transition, as recorded in the order history."""

    kind: str  # buyer, seller, moderator, admin, system
    user_id: str | None = None


SYSTEM = Actor("system")


def order_event_data(order: Order) -> dict:
    return {
        "order_id": order.id,
        "code": order.code,
        "buyer_id": order.buyer_id,
        "shop_id": order.shop_id,
        "status": order.status,
        "total": order.total,
        "discount": order.discount,
        "voucher_code": order.voucher_code,
        "payment_method": order.payment_method,
        "live_session_id": order.live_session_id,
    }


def record(
    session: AsyncSession, order_id: str, before: str | None, after: str, actor: Actor, reason=""
) -> None:
    session.add(OrderEvent(**history_entry(order_id, before, after, actor, reason)))


def history_entry(
    order_id: str, before: str | None, after: str, actor: Actor, reason: str = ""
) -> dict[str, Any]:
    """One entry of an order's history by column, for `record` or a writer of its own
    rows."""
    return {
        "id": new_id(),
        "order_id": order_id,
        "from_status": before,
        "to_status": after,
        "actor_id": actor.user_id,
        "actor": actor.kind,
        "reason": reason,
        "at": datetime.now(UTC),
    }


async def move(
    session: AsyncSession,
    order_id: str,
    to: S,
    actor: Actor,
    *,
    reason: str = "",
    allowed_from: Iterable[S] | None = None,
) -> tuple[Order, S] | None:
    """Change the status if the state machine (and `allowed_from`) allows it.

    Returns the updated order and the status it left, or None when it was in no
    status from which `to` may be entered.
    """
    allowed = sources(to) if allowed_from is None else sources(to) & set(allowed_from)
    before = await session.scalar(select(Order.status).where(Order.id == order_id))
    if before is None or S(before) not in allowed:
        return None
    order = await session.scalar(
        update(Order)
        .where(Order.id == order_id, Order.status == before)
        .values(status=to, updated_at=datetime.now(UTC))
        .returning(Order)
        .execution_options(populate_existing=True)
    )
    if order is None:  # someone else moved it between our read and our update
        return None
    record(session, order_id, before, to, actor, reason)
    return order, S(before)


async def mark_paid(session: AsyncSession, order_id: str, reason: str) -> Order | None:
    moved = await move(session, order_id, S.PAID, SYSTEM, reason=reason)
    if moved is None:
        return None
    order, _ = moved
    await settle(session, order_id, ReservationStatus.COMMITTED)
    add_event(session, "order.paid", order_event_data(order))
    return order


async def end_unpaid_or_cancel(
    session: AsyncSession,
    order_id: str,
    to: S,
    actor: Actor,
    *,
    reason: str = "",
    allowed_from: Iterable[S] | None = None,
) -> Order | None:
    """Cancel or expire: stock goes back (held or sold), money received becomes due back."""
    moved = await move(session, order_id, to, actor, reason=reason, allowed_from=allowed_from)
    if moved is None:
        return None
    order, before = moved
    levels = await settle(session, order_id, ReservationStatus.RELEASED)
    levels += await settle(session, order_id, ReservationStatus.RESTOCKED)
    await announce(session, levels)
    await _close_payment(session, order_id, to)
    add_event(
        session,
        f"order.{to.value}",
        {**order_event_data(order), "reason": reason, "previous_status": before.value},
    )
    return order


async def _close_payment(session: AsyncSession, order_id: str, to: S) -> None:
    """An order that will not be paid closes its payment; whatever arrived is owed back."""
    status = PaymentStatus.EXPIRED if to is S.EXPIRED else PaymentStatus.CANCELLED
    await session.execute(
        update(Payment)
        .where(Payment.order_id == order_id)
        .values(
            status=status,
            refund_due=Payment.received,
        )
    )
