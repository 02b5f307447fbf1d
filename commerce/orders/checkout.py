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
from types import SimpleNamespace
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.carts.models import CartItem
from commerce.catalog.models import Product, Variant
from commerce.catalog.sellable import sellable_units
from commerce.codes import order_code, payment_code
from commerce.inventory import Hold, reserve_each, settle
from commerce.orders.lifecycle import Actor, history_entry, order_event_data
from commerce.orders.models import (
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    PaymentMethod,
    Reservation,
    ReservationStatus,
)
from commerce.orders.one_statement import OneStatement, fits_one_statement
from commerce.payments.models import Payment, PaymentStatus
from commerce.pricing import LiveAllocations, LivePrices, current_price, live_stock_exhausted
from storage.bus.port import Event
from storage.ids import new_id
from storage.outbox import add_event, stage_event
from storage.sql.bulk import TableRow, insert_new, new_row
from storage.sql.statements import OnSession, Statements
from storage.web import Problem

ORDERS, ITEMS, RESERVATIONS, PAYMENTS, HISTORY = (
    model.__table__ for model in (Order, OrderItem, Reservation, Payment, OrderEvent)
)

if TYPE_CHECKING:
    from commerce.orders.express import ExpressCheckout

log = logging.getLogger("streamcart.checkout")
ATTEMPTS = 4
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
UNIQUE_VIOLATION = "23505"
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


class Record(SimpleNamespace):
    """A row just written, read by attribute like the mapped object it stands for;
    checkout builds these, not mapped objects, which cost ten times as much to make."""


@dataclass
class PlacedOrder:
    """The order, its lines and its payment (bank transfer) as written: `Record`s with
    the columns of `Order`, `OrderItem` and `Payment`."""

    order: Record
    items: list[Record]
    payment: Record | None


@dataclass
class StagedOrder:
    """An order's new rows and event, built before anything is written."""

    placed: PlacedOrder
    rows: list[TableRow]
    event: Event


@dataclass
class PricedUnit:
    """What a checkout sells of one variant; `unit_price` is None only until priced.
    `product` and `variant` are mapped rows, or `Record`s of their columns (express)."""

    product: Product
    variant: Variant
    quantity: int
    unit_price: int | None
    live_session_id: str | None
    cart_item_ids: list[str] = field(default_factory=list)


class CheckoutService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live_prices: LivePrices,
        live_allocations: LiveAllocations,
        payment_window: timedelta,
        express: ExpressCheckout | None = None,
    ) -> None:
        self._sessions = sessions
        self._live_prices = live_prices
        self._live_allocations = live_allocations
        self._payment_window = payment_window
        self._express = express

    async def checkout(
        self,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line] | None = None,
        *,
        shipping_address: str = "",
        note: str = "",
    ) -> list[PlacedOrder]:
        """Place the orders; `lines=None` checks out the buyer's cart and empties it.
        Named lines bought from a live session first pass its allocation's gate."""
        async with self._live_allocations.holding(buyer_id, from_sessions(lines or [])):
            return await self._checkout(
                buyer_id, method, lines, shipping_address=shipping_address, note=note
            )

    async def _checkout(
        self,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line] | None,
        *,
        shipping_address: str,
        note: str,
    ) -> list[PlacedOrder]:
        if self._express is not None and self._express.takes(method, lines):
            assert lines is not None
            placed = await self._express.place(
                buyer_id, method, lines, shipping_address=shipping_address, note=note
            )
            if placed is not None:
                return placed
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
        order_id: str | None = None,
    ) -> list[PlacedOrder]:
        """Place the orders inside the caller's transaction, for callers whose own writes
        must commit or roll back with the orders (a flash-sale claim and its order).
        `order_id`, for lines of one shop: the id the caller chose (to find it later)."""
        from_cart = lines is None
        priced = await self._price(session, buyer_id, lines)
        holds, by_shop = arrange(priced)
        by_variant = {unit.variant.id: unit for unit in priced}
        if fits_one_statement(session, holds):
            statement = OneStatement(holds)
            staged = self._stage_all(
                session, buyer_id, by_shop, method, shipping_address, note, order_id
            )
            short = await statement.reserve_and_insert_new(session, rows_of(staged))
            raise_if_short(short, by_variant)
        else:
            raise_if_short(await reserve_each(session, holds), by_variant)
            staged = self._stage_all(
                session, buyer_id, by_shop, method, shipping_address, note, order_id
            )
            await insert_new(session, rows_of(staged))  # every new row in one round trip
        placed = [s.placed for s in staged]
        if method is PaymentMethod.COD:  # sold at once: the held units are committed
            for order in placed:
                await settle(session, order.order.id, ReservationStatus.COMMITTED)
        await take_live_allocations(
            self._live_allocations, OnSession(session), buyer_id, placed, by_shop.values()
        )
        if from_cart:
            ids = [i for unit in priced for i in unit.cart_item_ids]
            await session.execute(delete(CartItem).where(CartItem.id.in_(ids)))
            add_event(session, "cart.updated", {"user_id": buyer_id})
        return placed

    def _stage_all(
        self, session, buyer_id, by_shop, method, shipping_address, note, order_id=None
    ) -> list[StagedOrder]:
        staged = stage_orders(
            buyer_id, by_shop, method, self._payment_window, shipping_address, note, order_id
        )
        for order in staged:
            stage_event(session, order.event)
        return staged

    async def _price(self, session, buyer_id, lines) -> list[PricedUnit]:
        if lines is None:
            # Locked: an add racing this checkout waits, then makes a new line, instead
            # of adding units to a line this checkout is about to delete.
            cart = (
                await session.scalars(
                    select(CartItem).where(CartItem.user_id == buyer_id).with_for_update()
                )
            ).all()
            if not cart:
                raise Problem(409, "cart-empty", "The cart is empty.")
            lines = [Line(c.product_id, c.quantity, c.variant_id, c.live_session_id) for c in cart]
            cart_ids: list[str | None] | None = [c.id for c in cart]
        else:
            cart_ids = None
        units = await sellable_units(session, lines)
        priced = merge_lines(lines, units, cart_ids)
        for unit in priced:
            if unit.unit_price is None:
                unit.unit_price = await current_price(
                    OnSession(session),
                    self._live_prices,
                    unit.product,
                    unit.variant,
                    unit.live_session_id,
                )
        return priced


def merge_lines(
    lines: list[Line],
    units: dict[tuple[str, str | None], tuple[Product, Variant]],
    cart_ids: list[str | None] | None = None,
) -> list[PricedUnit]:
    """One unit per (variant, live session), its quantity summed over the lines; its
    price is the first line's given one, or None until the caller prices it."""
    merged: dict[tuple[str, str | None], PricedUnit] = {}
    for line, cart_id in zip(lines, cart_ids or [None] * len(lines), strict=True):
        product, variant = units[(line.product_id, line.variant_id)]
        key = (variant.id, line.live_session_id)
        if key not in merged:
            merged[key] = PricedUnit(product, variant, 0, line.unit_price, line.live_session_id)
        merged[key].quantity += line.quantity
        if cart_id:
            merged[key].cart_item_ids.append(cart_id)
    return list(merged.values())


def from_sessions(lines: Iterable[Line]) -> dict[tuple[str, str], int]:
    """The units bought from live sessions, by (session, product)."""
    wanted: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        if line.live_session_id:
            wanted[line.live_session_id, line.product_id] += line.quantity
    return dict(wanted)


async def take_live_allocations(
    allocations: LiveAllocations,
    db: Statements,
    buyer_id: str,
    placed: list[PlacedOrder],
    units_by_order: Iterable[list[PricedUnit]],
) -> None:
    """Count what the orders buy from live sessions against the sessions' allocations:
    one count per (order, session, product), in a fixed order (no deadlocks); 409
    `live-stock-exhausted` when one cannot be covered (the caller's transaction then
    rolls everything back)."""
    wanted: dict[tuple[str, str, str], int] = defaultdict(int)
    names: dict[str, str] = {}
    for order, units in zip(placed, units_by_order, strict=True):
        for unit in units:
            if unit.live_session_id:
                key = (unit.live_session_id, unit.product.id, order.order.id)
                wanted[key] += unit.quantity
                names[unit.product.id] = unit.product.name
    for (live_session_id, product_id, order_id), quantity in sorted(wanted.items()):
        if not await allocations.take(
            db, order_id, buyer_id, live_session_id, product_id, quantity
        ):
            raise live_stock_exhausted(live_session_id, product_id, quantity, names[product_id])


def rows_of(staged: list[StagedOrder]) -> list[TableRow]:
    """The orders' rows, without their events."""
    return [row for order in staged for row in order.rows]


def arrange(priced: list[PricedUnit]) -> tuple[list[Hold], dict[str, list[PricedUnit]]]:
    """The stock holds in variant id order (a fixed order: no deadlocks) and the units
    grouped into one order per shop."""
    holds = [
        Hold(u.product.shop_id, u.product.id, u.variant.id, u.quantity)
        for u in sorted(priced, key=lambda p: p.variant.id)
    ]
    by_shop: dict[str, list[PricedUnit]] = defaultdict(list)
    for unit in priced:
        by_shop[unit.product.shop_id].append(unit)
    return holds, by_shop


def stage_orders(
    buyer_id: str,
    by_shop: dict[str, list[PricedUnit]],
    method: PaymentMethod,
    payment_window: timedelta,
    shipping_address: str,
    note: str,
    order_id: str | None = None,
) -> list[StagedOrder]:
    """One staged order per shop, all created now; `order_id` names the only one."""
    if order_id is not None and len(by_shop) != 1:
        raise ValueError("an order id can only be given for the lines of one shop")
    now = datetime.now(UTC)
    return [
        stage_order(
            buyer_id,
            shop_id,
            units,
            method,
            now,
            payment_window,
            shipping_address=shipping_address,
            note=note,
            order_id=order_id,
        )
        for shop_id, units in by_shop.items()
    ]


def stage_order(
    buyer_id: str,
    shop_id: str,
    units: list[PricedUnit],
    method: PaymentMethod,
    now: datetime,
    payment_window: timedelta,
    *,
    shipping_address: str,
    note: str,
    order_id: str | None = None,
) -> StagedOrder:
    """One shop's order as new rows: the order, its lines, reservations, payment (bank
    transfer) and first history entry, and its `order.created` event. Nothing is written."""
    cod = method is PaymentMethod.COD
    status = OrderStatus.PROCESSING if cod else OrderStatus.PENDING_PAYMENT
    live_ids = {u.live_session_id for u in units if u.live_session_id}
    subtotal = sum(u.unit_price * u.quantity for u in units)
    order = Record(
        id=order_id or new_id(),
        code=order_code(now),
        buyer_id=buyer_id,
        shop_id=shop_id,
        status=status,
        payment_method=method,
        live_session_id=next(iter(live_ids)) if len(live_ids) == 1 else None,
        subtotal=subtotal,
        shipping_fee=0,
        discount=0,
        total=subtotal,
        shipping_address=shipping_address,
        note=note,
        payment_deadline=None if cod else now + payment_window,
        created_at=now,
        updated_at=now,
    )
    items = [
        Record(
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
    rows = [new_row(ORDERS, vars(order)), *(new_row(ITEMS, vars(item)) for item in items)]
    rows.extend(
        new_row(
            RESERVATIONS,
            {
                "id": new_id(),
                "order_id": order.id,
                "variant_id": u.variant.id,
                "quantity": u.quantity,
                "status": ReservationStatus.HELD,
                "created_at": now,
            },
        )
        for u in units
    )
    payment = None
    if not cod:
        payment = Record(
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
            paid_at=None,
        )
        rows.append(new_row(PAYMENTS, vars(payment)))
    reason = "cash on delivery" if cod else "awaiting bank transfer"
    entry = history_entry(order.id, None, status, Actor("buyer", buyer_id), reason)
    rows.append(new_row(HISTORY, entry))
    event = Event(
        "order.created", {**order_event_data(order), "items": [_item_data(i) for i in items]}
    )
    return StagedOrder(PlacedOrder(order, items, payment), rows, event)


async def retrying_transaction(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """Run `work` in a transaction of its own and commit it, retried as `retrying` says:
    `work` must only write to the session."""

    async def once() -> T:
        async with sessions.begin() as session:
            return await work(session)

    return await retrying(once)


async def retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` again (a few times, briefly) when it collided on a generated code
    or lost a PostgreSQL deadlock or serialization conflict, whether the error comes
    through SQLAlchemy or straight from the driver."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except Exception as exc:
            if number == ATTEMPTS or not _retryable(exc):
                raise
            log.info("transaction retried", extra={"attempt": number, "cause": _sqlstate(exc)})
            await asyncio.sleep(0.005 * number)
    raise AssertionError("unreachable")


def raise_if_short(short: Hold | None, units: dict[str, PricedUnit]) -> None:
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


def _sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's error code, from asyncpg's error or SQLAlchemy's wrapper of it."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _retryable(exc: BaseException) -> bool:
    """Code collisions (unique violations on generated codes) and PostgreSQL conflicts."""
    if isinstance(exc, IntegrityError) or _sqlstate(exc) == UNIQUE_VIOLATION:
        text = str(getattr(exc, "orig", exc))
        return any(name in text for name in GENERATED_CODE_CONSTRAINTS)
    return _sqlstate(exc) in RETRYABLE_SQLSTATES
