"""Buy-now on PostgreSQL in two statements on an asyncpg connection, without the ORM.

The checkout a live stream makes most of (buy-now lines, bank transfer) is the one
that must scale. Through SQLAlchemy's session it cost about three times the
CPU of its database work, most of it in the ORM's unit of work, its result loading and
its transaction round trips. Here the same checkout is:

1. one SELECT of the products, variants and shop statuses (built from the tables'
   metadata, compiled once to asyncpg's placeholders), on a connection of
   asyncpg's own pool (`storage.sql.driver_pool`) with its prepared statements,
   resolved and priced by the same code as the general checkout;
2. the same one-statement reservation and insert as the general checkout on
   PostgreSQL (`one_statement.py`), which changes everything or nothing and so needs
   no transaction around it: no BEGIN and COMMIT round trips.

Lines bought from a live session are priced by the session's live price and counted
against its allocation by the same hooks as in the general checkout
(`commerce.pricing`, run on this connection through `storage.sql.statements`); the
write and the counts then go in one asyncpg transaction. The rows and events are
staged by `staging.py`, as in the general checkout, so the two write the same rows.
A cart, cash on delivery and a flash-sale claim go through `CheckoutService`'s general
path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, nullcontext
from datetime import timedelta
from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam, select
from sqlalchemy.engine import Dialect

from commerce.catalog.models import Product, Variant
from commerce.catalog.sellable import resolve_units
from commerce.orders.models import PaymentMethod
from commerce.orders.one_statement import OneStatement, holds_each_variant_once
from commerce.orders.staging import (
    Line,
    PlacedOrder,
    PricedUnit,
    Record,
    arrange,
    merge_lines,
    price,
    raise_if_short,
    retrying,
    rows_of,
    stage_orders,
    take_live_allocations,
)
from commerce.pricing import LiveAllocations, LivePrices
from commerce.shops.models import Shop
from storage.bus.port import Event
from storage.outbox import OutboxRow, outbox_values
from storage.sql.bulk import new_row
from storage.sql.driver_pool import DriverPool
from storage.sql.statements import OnDriver

OUTBOX = OutboxRow.__table__
PRODUCTS, VARIANTS, SHOPS = (model.__table__ for model in (Product, Variant, Shop))
# The columns `resolve_units` and the pricing read, taken from the tables.
_PRODUCT_COLUMNS = ("id", "shop_id", "name", "status", "base_price")
_VARIANT_COLUMNS = ("id", "product_id", "price", "archived", "options")
_UNITS = (
    select(
        *(PRODUCTS.c[name] for name in _PRODUCT_COLUMNS),
        *(VARIANTS.c[name] for name in _VARIANT_COLUMNS),
        SHOPS.c.status,
    )
    .join_from(PRODUCTS, VARIANTS, VARIANTS.c.product_id == PRODUCTS.c.id)
    .join(SHOPS, SHOPS.c.id == PRODUCTS.c.shop_id)
    .where(PRODUCTS.c.id == any_(bindparam("product_ids", type_=ARRAY(String))))
)


class ExpressCheckout:
    """The fast path of `CheckoutService.checkout` on PostgreSQL; `takes` says when."""

    def __init__(
        self,
        pool: DriverPool,
        dialect: Dialect,
        live_prices: LivePrices,
        live_allocations: LiveAllocations,
        payment_window: timedelta,
        events_committed: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._dialect = dialect
        self._live_prices = live_prices
        self._live_allocations = live_allocations
        self._payment_window = payment_window
        self.events_committed = events_committed  # wakes the outbox relay

    def takes(self, method: PaymentMethod, lines: Sequence[Line] | None) -> bool:
        """Named lines at their current (regular or live) prices, paid by bank transfer;
        not a flash-sale claim, whose price is set by the sale."""
        return (
            lines is not None
            and method is PaymentMethod.BANK_TRANSFER
            and all(line.unit_price is None for line in lines)
        )

    async def place(
        self,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line],
        *,
        shipping_address: str = "",
        note: str = "",
    ) -> list[PlacedOrder] | None:
        """The orders placed, or None when these lines hold a variant twice (see
        `holds_each_variant_once`): the general path places those."""
        async with self._pool.acquire() as connection:
            priced = await self._priced(connection, lines)
            if not holds_each_variant_once(arrange(priced)[0]):
                return None
            # Lines bought from a live session are also counted against its allocation,
            # which must commit or roll back with the orders: a transaction then.
            live = any(unit.live_session_id for unit in priced)

            async def attempt() -> list[PlacedOrder]:
                async with connection.transaction() if live else nullcontext():
                    return await self._write(
                        connection, buyer_id, method, priced, shipping_address, note
                    )

            placed = await retrying(attempt)
        self.events_committed()
        return placed

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A connection of the pool inside a transaction, for `place_within`."""
        async with self._pool.acquire() as connection, connection.transaction():
            yield connection

    async def place_within(
        self,
        connection: Any,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line],
        *,
        order_id: str | None = None,
        events: Sequence[Event] = (),
    ) -> list[PlacedOrder]:
        """The same inside the caller's transaction on `connection`, for writers whose own
        statements must commit with the orders (a flash-sale claim), with `events` of
        theirs written in the same statement; lines at a given `unit_price` keep it.
        The caller commits, then calls `events_committed`."""
        priced = await self._priced(connection, lines)
        return await self._write(
            connection, buyer_id, method, priced, "", "", order_id=order_id, events=events
        )

    async def _priced(self, connection: Any, lines: list[Line]) -> list[PricedUnit]:
        db = OnDriver(connection)
        products = list({line.product_id for line in lines})
        rows = await db.rows(_UNITS, {"product_ids": products})
        priced = merge_lines(lines, resolve_units(lines, _units(rows)))
        await price(db, self._live_prices, priced)
        return priced

    async def _write(
        self,
        connection: Any,
        buyer_id: str,
        method: PaymentMethod,
        priced: list[PricedUnit],
        shipping_address: str,
        note: str,
        *,
        order_id: str | None = None,
        events: Sequence[Event] = (),
    ) -> list[PlacedOrder]:
        holds, by_shop = arrange(priced)
        statement = OneStatement(holds)  # first: its events come first
        staged = stage_orders(
            buyer_id, by_shop, method, self._payment_window, shipping_address, note, order_id
        )
        outbox = [*(order.event for order in staged), *events]
        rows = [*rows_of(staged), *(new_row(OUTBOX, outbox_values(e)) for e in outbox)]
        short = await statement.reserve_and_insert(connection, self._dialect, rows)
        raise_if_short(short, priced)
        placed = [order.placed for order in staged]
        await take_live_allocations(
            self._live_allocations, OnDriver(connection), buyer_id, placed, by_shop.values()
        )
        return placed


def _units(records: Iterable[Sequence]) -> list[tuple[Record, Record, str]]:
    """The rows `resolve_units` reads, as `Record`s of the columns `_UNITS` selects,
    one product record per product."""
    products: dict[str, Record] = {}
    units = []
    split = len(_PRODUCT_COLUMNS)
    for record in records:
        *columns, shop_status = record
        product = products.get(columns[0])
        if product is None:
            product = products[columns[0]] = Record(
                **dict(zip(_PRODUCT_COLUMNS, columns[:split], strict=True))
            )
        variant = Record(**dict(zip(_VARIANT_COLUMNS, columns[split:], strict=True)))
        variant.options = json.loads(variant.options)  # asyncpg answers json as text
        units.append((product, variant, shop_status))
    return units
