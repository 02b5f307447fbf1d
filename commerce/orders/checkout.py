"""Checkout: a cart (or a list of lines) becomes one order per shop, stock held atomically.

The whole checkout is one transaction: every line's units are reserved with a
conditional UPDATE (never read-then-write), so 200 buyers racing for 10 units
get exactly 10; lines bought from a live session are also counted against the
session's own allocation of the product; if any line cannot be reserved nothing is
kept. The orders, their lines, history, reservations, payments and outbox events
commit together.

Pricing, validation and the rows to write are the same on every database; only the
write differs. On PostgreSQL the reservation and every new row go in one statement
(`one_statement.py`); elsewhere (SQLite, or a checkout holding one variant twice)
each line is reserved in turn and the rows follow in one bulk insert.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.carts.models import CartItem
from commerce.catalog.models import Product, Variant
from commerce.catalog.sellable import sellable_units
from commerce.codes import order_code, payment_code
from commerce.inventory import Hold, reserve_each, settle
from commerce.orders.lifecycle import Actor, order_event_data, record
from commerce.orders.models import (
    Order,
    OrderItem,
    OrderStatus,
    PaymentMethod,
    Reservation,
    ReservationStatus,
)
from commerce.orders.one_statement import OneStatement, fits_one_statement
from commerce.payments.models import Payment, PaymentStatus
from commerce.pricing import LiveAllocations, LivePrices, current_price
from storage.ids import new_id
from storage.outbox import add_event
from storage.sql.bulk import insert_new
from storage.web import Problem

log = logging.getLogger("streamcart.checkout")
ATTEMPTS = 4
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
# How PostgreSQL and SQLite name a collision of a randomly generated code.
GENERATED_CODE_CONSTRAINTS = ("uq_orders_code", "uq_payments_code", "orders.code", "payments.code")
T = TypeVar("T")


@dataclass(frozen=True)
class Line:
    """One thing to buy. `unit_price` is for trusted callers (flash-sale claims) only."""

    product_id: str
    quantity: int
    variant_id: str | None = None
    live_session_id: str | None = None
    unit_price: int | None = None


@dataclass
class PlacedOrder:
    order: Order
    items: list[OrderItem]
    payment: Payment | None


@dataclass
class _Priced:
    product: Product
    variant: Variant
    quantity: int
    unit_price: int
    live_session_id: str | None
    cart_item_ids: list[str] = field(default_factory=list)


class CheckoutService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live_prices: LivePrices,
        live_allocations: LiveAllocations,
        payment_window: timedelta,
    ) -> None:
        self._sessions = sessions
        self._live_prices = live_prices
        self._live_allocations = live_allocations
        self._payment_window = payment_window

    async def checkout(
        self,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line] | None = None,
        *,
        shipping_address: str = "",
        note: str = "",
    ) -> list[PlacedOrder]:
        """Place the orders; `lines=None` checks out the buyer's cart and empties it."""
        return await retrying_transaction(
            self._sessions,
            lambda session: self.place_in(
                session, buyer_id, method, lines, shipping_address=shipping_address, note=note
            ),
        )

    async def place_in(
        self,
        session: AsyncSession,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line] | None = None,
        *,
        shipping_address: str = "",
        note: str = "",
    ) -> list[PlacedOrder]:
        """Place the orders inside the caller's transaction, for callers whose own writes
        must commit or roll back with the orders (a flash-sale claim and its order)."""
        from_cart = lines is None
        priced = await self._price(session, buyer_id, lines)
        now = datetime.now(UTC)
        by_variant = {unit.variant.id: unit for unit in priced}
        holds = [  # fixed order: no deadlocks
            Hold(u.product.shop_id, u.product.id, u.variant.id, u.quantity)
            for u in sorted(priced, key=lambda p: p.variant.id)
        ]
        by_shop: dict[str, list[_Priced]] = defaultdict(list)
        for unit in priced:
            by_shop[unit.product.shop_id].append(unit)
        if fits_one_statement(session, holds):
            statement = OneStatement(holds)
            placed = self._orders(session, buyer_id, by_shop, method, now, shipping_address, note)
            _raise_if_short(await statement.reserve_and_insert_new(session), by_variant)
        else:
            _raise_if_short(await reserve_each(session, holds), by_variant)
            placed = self._orders(session, buyer_id, by_shop, method, now, shipping_address, note)
            await insert_new(session)  # every new row in one round trip
        if method is PaymentMethod.COD:  # sold at once: the held units are committed
            for order in placed:
                await settle(session, order.order.id, ReservationStatus.COMMITTED)
        await self._take_live_allocations(session, buyer_id, placed, by_shop.values())
        await insert_new(session)  # the live sessions' counts, if any
        if from_cart:
            ids = [i for unit in priced for i in unit.cart_item_ids]
            await session.execute(delete(CartItem).where(CartItem.id.in_(ids)))
            add_event(session, "cart.updated", {"user_id": buyer_id})
        return placed

    def _orders(
        self, session, buyer_id, by_shop, method, now, shipping_address, note
    ) -> list[PlacedOrder]:
        return [
            self._order(session, buyer_id, shop_id, units, method, now, shipping_address, note)
            for shop_id, units in by_shop.items()
        ]

    async def _take_live_allocations(
        self,
        session: AsyncSession,
        buyer_id: str,
        placed: list[PlacedOrder],
        units_by_order: Iterable[list[_Priced]],
    ) -> None:
        """One count per (order, session, product), taken in a fixed order (no deadlocks)."""
        wanted: dict[tuple[str, str, str], int] = defaultdict(int)
        names: dict[str, str] = {}
        for order, units in zip(placed, units_by_order, strict=True):
            for unit in units:
                if unit.live_session_id:
                    key = (unit.live_session_id, unit.product.id, order.order.id)
                    wanted[key] += unit.quantity
                    names[unit.product.id] = unit.product.name
        for (live_session_id, product_id, order_id), quantity in sorted(wanted.items()):
            if not await self._live_allocations.take(
                session, order_id, buyer_id, live_session_id, product_id, quantity
            ):
                raise Problem(
                    409,
                    "live-stock-exhausted",
                    f"No more units of '{names[product_id]}' are set aside for this live session.",
                    product_id=product_id,
                    live_session_id=live_session_id,
                    requested=quantity,
                )

    def _order(
        self, session, buyer_id, shop_id, units, method, now, shipping_address, note
    ) -> PlacedOrder:
        """Stage the order, its lines, reservations, payment, history and event."""
        cod = method is PaymentMethod.COD
        status = OrderStatus.PROCESSING if cod else OrderStatus.PENDING_PAYMENT
        live_ids = {u.live_session_id for u in units if u.live_session_id}
        order = Order(
            id=new_id(),
            code=order_code(now),
            buyer_id=buyer_id,
            shop_id=shop_id,
            status=status,
            payment_method=method,
            live_session_id=next(iter(live_ids)) if len(live_ids) == 1 else None,
            subtotal=sum(u.unit_price * u.quantity for u in units),
            shipping_fee=0,
            discount=0,
            shipping_address=shipping_address,
            note=note,
            payment_deadline=None if cod else now + self._payment_window,
            created_at=now,
            updated_at=now,
        )
        order.total = order.subtotal + order.shipping_fee - order.discount
        items = [
            OrderItem(
                id=new_id(),
                order_id=order.id,
                product_id=u.product.id,
                variant_id=u.variant.id,
                name=_line_name(u.product, u.variant),
                quantity=u.quantity,
                unit_price=u.unit_price,
                line_total=u.unit_price * u.quantity,
            )
            for u in units
        ]
        session.add(order)
        session.add_all(items)
        session.add_all(
            Reservation(
                id=new_id(),
                order_id=order.id,
                variant_id=u.variant.id,
                quantity=u.quantity,
                status=ReservationStatus.HELD,
                created_at=now,
            )
            for u in units
        )
        payment = None
        if not cod:
            payment = Payment(
                id=new_id(),
                code=payment_code(),
                order_id=order.id,
                buyer_id=buyer_id,
                amount=order.total,
                received=0,
                refund_due=0,
                status=PaymentStatus.PENDING,
                expires_at=order.payment_deadline,
                created_at=now,
            )
            session.add(payment)
        reason = "cash on delivery" if cod else "awaiting bank transfer"
        record(session, order.id, None, status, Actor("buyer", buyer_id), reason)
        add_event(
            session,
            "order.created",
            {**order_event_data(order), "items": [_item_data(i) for i in items]},
        )
        return PlacedOrder(order, items, payment)

    async def _price(self, session, buyer_id, lines) -> list[_Priced]:
        if lines is None:
            cart = (
                await session.scalars(select(CartItem).where(CartItem.user_id == buyer_id))
            ).all()
            if not cart:
                raise Problem(409, "cart-empty", "The cart is empty.")
            lines = [Line(c.product_id, c.quantity, c.variant_id, c.live_session_id) for c in cart]
            cart_ids = [c.id for c in cart]
        else:
            cart_ids = [None] * len(lines)
        units = await sellable_units(session, lines)
        merged: dict[tuple[str, str | None], _Priced] = {}
        for line, cart_id in zip(lines, cart_ids, strict=True):
            product, variant = units[(line.product_id, line.variant_id)]
            key = (variant.id, line.live_session_id)
            if key not in merged:
                price = line.unit_price
                if price is None:
                    price = await current_price(
                        session, self._live_prices, product, variant, line.live_session_id
                    )
                merged[key] = _Priced(product, variant, 0, price, line.live_session_id)
            merged[key].quantity += line.quantity
            if cart_id:
                merged[key].cart_item_ids.append(cart_id)
        return list(merged.values())


async def retrying_transaction(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """Run `work` in a transaction of its own and commit it. The whole transaction is
    retried (a few times, briefly) when it collided on a generated code or lost a
    PostgreSQL deadlock or serialization conflict: `work` must only write to the session."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with sessions.begin() as session:
                return await work(session)
        except (IntegrityError, DBAPIError) as exc:
            if attempt == ATTEMPTS or not _retryable(exc):
                raise
            log.info("transaction retried", extra={"attempt": attempt, "cause": _sqlstate(exc)})
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


def _raise_if_short(short: Hold | None, units: dict[str, _Priced]) -> None:
    if short is not None:
        unit = units[short.variant_id]
        raise Problem(
            409,
            "out-of-stock",
            f"Not enough stock for '{unit.product.name}'.",
            product_id=unit.product.id,
            variant_id=unit.variant.id,
            requested=short.quantity,
        )


def _line_name(product: Product, variant: Variant) -> str:
    options = ", ".join(f"{k}: {v}" for k, v in sorted(variant.options.items()))
    return f"{product.name} ({options})" if options else product.name


def _item_data(item: OrderItem) -> dict:
    return {
        "product_id": item.product_id,
        "variant_id": item.variant_id,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
    }


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _retryable(exc: DBAPIError) -> bool:
    """Code collisions (unique violations on generated codes) and PostgreSQL conflicts."""
    if isinstance(exc, IntegrityError):
        text = str(exc.orig)
        return any(name in text for name in GENERATED_CODE_CONSTRAINTS)
    return _sqlstate(exc) in RETRYABLE_SQLSTATES
