"""Reading orders and acting on them, each call checking who may see or move the order."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.tokens import Principal
from commerce.orders.lifecycle import Actor, end_unpaid_or_cancel, move, order_event_data
from commerce.orders.models import Order, OrderEvent, OrderItem
from commerce.orders.models import OrderStatus as S
from commerce.orders.schemas import OrderListQuery
from commerce.orders.states import (
    ADMIN_STEPS,
    BUYER_CANCELLABLE,
    SELLER_STEPS,
    SHOP_CANCELLABLE,
)
from commerce.payments.models import Payment
from commerce.shops.access import require_shop_access, shop_role
from storage.outbox import add_event
from storage.web import Problem
from storage.web.pagination import keyset_page

NOT_FOUND = Problem(404, "order-not-found", "No such order.")


@dataclass
class OrderView:
    order: Order
    items: list[OrderItem]
    payment: Payment | None
    history: list[OrderEvent] | None = None


class OrderService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def list(
        self, principal: Principal, query: OrderListQuery
    ) -> tuple[list[OrderView], str | None]:
        """The caller's purchases, or with `shop_id` the orders of a shop they run; with
        `live_session_id` only those bought (in part) in that session."""
        async with self._sessions() as session:
            select_orders = select(Order)
            if query.shop_id is not None:
                await require_shop_access(session, principal, query.shop_id)
                select_orders = select_orders.where(Order.shop_id == query.shop_id)
            else:
                select_orders = select_orders.where(Order.buyer_id == principal.user_id)
            if query.status is not None:
                select_orders = select_orders.where(Order.status == query.status)
            if query.live_session_id is not None:
                select_orders = select_orders.where(_bought_in(query.live_session_id))
            orders, cursor = await keyset_page(session, select_orders, Order.id, query)
            return await _views(session, orders), cursor

    async def get(self, principal: Principal, order_id: str) -> OrderView:
        async with self._sessions() as session:
            order = await session.get(Order, order_id)
            if order is None or await _relation(session, principal, order) is None:
                raise NOT_FOUND
            (view,) = await _views(session, [order])
            view.history = (
                await session.scalars(
                    select(OrderEvent)
                    .where(OrderEvent.order_id == order_id)
                    .order_by(OrderEvent.at, OrderEvent.id)
                )
            ).all()
            return view

    async def cancel(self, principal: Principal, order_id: str, reason: str) -> OrderView:
        async with self._sessions.begin() as session:
            order = await session.get(Order, order_id)
            relation = order and await _relation(session, principal, order)
            if not relation:
                raise NOT_FOUND
            allowed = BUYER_CANCELLABLE if relation == "buyer" else SHOP_CANCELLABLE
            moved = await end_unpaid_or_cancel(
                session,
                order_id,
                S.CANCELLED,
                Actor(relation, principal.user_id),
                reason=reason,
                allowed_from=allowed,
            )
            if moved is None:
                raise _cannot(order.status, S.CANCELLED)
        return await self.get(principal, order_id)

    async def advance(self, principal: Principal, order_id: str, to: S, note: str) -> OrderView:
        """A fulfilment step by the shop (or a refund recorded by an admin)."""
        async with self._sessions.begin() as session:
            order = await session.get(Order, order_id)
            relation = order and await _relation(session, principal, order)
            if not relation:
                raise NOT_FOUND
            steps = ADMIN_STEPS if relation == "admin" else SELLER_STEPS
            if relation == "buyer" or to not in steps:
                raise Problem(403, "forbidden", f"You may not set an order to '{to}'.")
            moved = await move(
                session, order_id, to, Actor(relation, principal.user_id), reason=note
            )
            if moved is None:
                raise _cannot(order.status, to)
            moved_order, before = moved
            add_event(  # order.shipped, order.delivered, ...: the buyer is told
                session,
                f"order.{to.value}",
                {**order_event_data(moved_order), "reason": note, "previous_status": before.value},
            )
        return await self.get(principal, order_id)


def _bought_in(live_session_id: str) -> ColumnElement[bool]:
    """An order with a line bought in the session. Lines written before lines kept
    their session (migration 0016) have none: their order's own session counts then."""
    lines = select(OrderItem.order_id).where(OrderItem.live_session_id == live_session_id)
    return or_(Order.live_session_id == live_session_id, Order.id.in_(lines))


async def _relation(session: AsyncSession, principal: Principal, order: Order) -> str | None:
    """How the caller relates to the order: admin, owner/moderator of its shop, or buyer."""
    role = await shop_role(session, principal, order.shop_id)
    if role is not None:
        return "seller" if role == "owner" else role
    return "buyer" if order.buyer_id == principal.user_id else None


def _cannot(current: str, target: S) -> Problem:
    return Problem(
        409,
        "invalid-transition",
        f"An order that is {current} cannot become {target}.",
        current_status=current,
    )


async def _views(session: AsyncSession, orders) -> list[OrderView]:
    ids = [o.id for o in orders]
    if not ids:
        return []
    items = (await session.scalars(select(OrderItem).where(OrderItem.order_id.in_(ids)))).all()
    payments = (await session.scalars(select(Payment).where(Payment.order_id.in_(ids)))).all()
    by_order = {o.id: OrderView(o, [], None) for o in orders}
    for item in items:
        by_order[item.order_id].items.append(item)
    for payment in payments:
        by_order[payment.order_id].payment = payment
    return [by_order[i] for i in ids]
