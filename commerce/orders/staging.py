"""What both checkout write paths share: the lines priced per unit, the new rows of each
order staged from the tables' own columns (`storage.sql.bulk.new_row`), the live
allocations counted, the units priced, a shortage turned into its problem, and the retry of a write
that collided. The general checkout (`checkout.py`, through SQLAlchemy) and the express
one (`express.py`, on asyncpg) each import this and never each other, so they write
the same rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.catalog.models import Product, Variant
from commerce.codes import order_code, payment_code
from commerce.inventory import Hold, Shortage, out_of_stock
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
from commerce.payments.models import Payment, PaymentStatus
from commerce.pricing import LiveAllocations, LivePrices, current_price, live_stock_exhausted
from commerce.vouchers.discount import Applied
from storage.bus.port import Event
from storage.ids import new_id
from storage.sql import retry
from storage.sql.bulk import TableRow, new_row
from storage.sql.statements import Statements

ORDERS, ITEMS, RESERVATIONS, PAYMENTS, HISTORY = (
    model.__table__ for model in (Order, OrderItem, Reservation, Payment, OrderEvent)
)
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


async def retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """`storage.sql.retry.retrying`, also retrying a collision of generated codes."""
    return await retry.retrying(attempt, generated=GENERATED_CODE_CONSTRAINTS)


async def retrying_transaction(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """`storage.sql.retry.retrying_transaction`, also retrying a collision of codes."""
    return await retry.retrying_transaction(sessions, work, generated=GENERATED_CODE_CONSTRAINTS)


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


async def price(db: Statements, live_prices: LivePrices, units: list[PricedUnit]) -> None:
    """Price the units not priced yet at their current (regular or live) price."""
    for unit in units:
        if unit.unit_price is None:
            unit.unit_price = await current_price(
                db, live_prices, unit.product, unit.variant, unit.live_session_id
            )


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


def raise_if_short(short: Shortage | None, units: list[PricedUnit]) -> None:
    """409 `out-of-stock` naming the line that lacked stock and how many it can have."""
    if short is not None:
        unit = next(u for u in units if u.variant.id == short.hold.variant_id)
        raise out_of_stock(
            unit.product.name,
            unit.product.id,
            unit.variant.id,
            short.hold.quantity,
            short.available,
        )


async def take_live_allocations(
    allocations: LiveAllocations,
    db: Statements,
    buyer_id: str,
    placed: list[PlacedOrder],
    units_by_order: Iterable[list[PricedUnit]],
) -> None:
    """Count what the orders buy from live sessions against the sessions' allocations:
    one count per (order, session, product), in a fixed order (no deadlocks); 409
    `live-stock-exhausted`, with what is left, when one cannot be covered (the caller's
    transaction then rolls everything back)."""
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
            left = await allocations.left(db, live_session_id, product_id)
            raise live_stock_exhausted(
                live_session_id, product_id, quantity, left or 0, names[product_id]
            )


def rows_of(staged: list[StagedOrder]) -> list[TableRow]:
    """The orders' rows, without their events."""
    return [row for order in staged for row in order.rows]


def stage_orders(
    buyer_id: str,
    by_shop: dict[str, list[PricedUnit]],
    method: PaymentMethod,
    payment_window: timedelta,
    shipping_address: str,
    note: str,
    order_id: str | None = None,
    applied: Applied | None = None,
) -> list[StagedOrder]:
    """One staged order per shop, all created now; `order_id` names the only one;
    `applied`: a voucher's discount on its shop's order."""
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
            applied=applied if applied is not None and applied.shop_id == shop_id else None,
        )
        for shop_id, units in by_shop.items()
    ]


def subtotal_of(units: list[PricedUnit]) -> int:
    return sum(u.unit_price * u.quantity for u in units)


def live_session_of(units: list[PricedUnit]) -> str | None:
    """The order's live session: the one its units were all bought in, if any."""
    live_ids = {u.live_session_id for u in units if u.live_session_id}
    return next(iter(live_ids)) if len(live_ids) == 1 else None


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
    applied: Applied | None = None,
) -> StagedOrder:
    """One shop's order as new rows: the order, its lines, reservations, payment (bank
    transfer) and first history entry, and its `order.created` event. Nothing is written.
    With `applied`, the voucher's discount comes off the total (and so the payment)."""
    cod = method is PaymentMethod.COD
    status = OrderStatus.PROCESSING if cod else OrderStatus.PENDING_PAYMENT
    subtotal = subtotal_of(units)
    voucher = applied.order_columns() if applied is not None else {}
    rows: list[TableRow] = []
    order = _staged(
        rows,
        ORDERS,
        id=order_id or new_id(),
        code=order_code(now),
        buyer_id=buyer_id,
        shop_id=shop_id,
        status=status,
        payment_method=method,
        live_session_id=live_session_of(units),
        subtotal=subtotal,
        total=subtotal - voucher.get("discount", 0),
        **voucher,
        shipping_address=shipping_address,
        note=note,
        payment_deadline=None if cod else now + payment_window,
        created_at=now,
        updated_at=now,
    )
    items = [
        _staged(
            rows,
            ITEMS,
            id=new_id(),
            order_id=order.id,
            product_id=u.product.id,
            variant_id=u.variant.id,
            name=_line_name(u.product, u.variant),
            quantity=u.quantity,
            unit_price=u.unit_price,
            line_total=u.unit_price * u.quantity,
            live_session_id=u.live_session_id,
        )
        for u in units
    ]
    for u in units:
        _staged(
            rows,
            RESERVATIONS,
            id=new_id(),
            order_id=order.id,
            variant_id=u.variant.id,
            quantity=u.quantity,
            status=ReservationStatus.HELD,
            created_at=now,
        )
    payment = None
    if not cod:
        payment = _staged(
            rows,
            PAYMENTS,
            id=new_id(),
            code=payment_code(),
            order_id=order.id,
            buyer_id=buyer_id,
            amount=order.total,
            status=PaymentStatus.PENDING,
            expires_at=order.payment_deadline,
            created_at=now,
        )
    reason = "cash on delivery" if cod else "awaiting bank transfer"
    if applied is not None:
        reason += f"; voucher {applied.code}: -{applied.amount} VND"
    entry = history_entry(order.id, None, status, Actor("buyer", buyer_id), reason)
    rows.append(new_row(HISTORY, entry))
    event = Event(
        "order.created", {**order_event_data(order), "items": [_item_data(i) for i in items]}
    )
    return StagedOrder(PlacedOrder(order, items, payment), rows, event)


def _staged(rows: list[TableRow], table: Table, **values: Any) -> Record:
    """Stage a new row of `table` (columns not given get their defaults) and answer it
    as a `Record` of all the table's columns."""
    row = new_row(table, values)
    rows.append(row)
    return Record(**row[1])


def _line_name(product: Product, variant: Variant) -> str:
    options = ", ".join(f"{k}: {v}" for k, v in sorted(variant.options.items()))
    return f"{product.name} ({options})" if options else product.name


def _item_data(item: Record) -> dict:
    return {
        "product_id": item.product_id,
        "variant_id": item.variant_id,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
    }
