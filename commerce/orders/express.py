"""Buy-now on PostgreSQL in two statements on an asyncpg connection, without the ORM.

The checkout a live stream makes most of (named lines, bank transfer, regular prices)
is the one that must scale. Through SQLAlchemy's session it cost about three times the
CPU of its database work, most of it in the ORM's unit of work, its result loading and
its transaction round trips. Here the same checkout is:

1. one SELECT of the products, variants and shop statuses, on a connection of
   asyncpg's own pool (`storage.sql.driver_pool`) with its prepared statements,
   resolved and priced by the same code as the general checkout;
2. the same one-statement reservation and insert as the general checkout on
   PostgreSQL (`one_statement.py`), which changes everything or nothing and so needs
   no transaction around it: no BEGIN and COMMIT round trips.

The rows and events are staged by `stage_orders`, as in the general checkout, so the
two write the same rows. Anything else (a cart, live-session lines, cash on delivery,
a flash-sale claim) goes through `CheckoutService`'s general path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

from sqlalchemy.engine import Dialect

from commerce.catalog.sellable import resolve_units
from commerce.orders.checkout import (
    Line,
    PlacedOrder,
    Record,
    arrange,
    merge_lines,
    raise_if_short,
    retrying,
    rows_of,
    stage_orders,
)
from commerce.orders.models import PaymentMethod
from commerce.orders.one_statement import OneStatement
from commerce.pricing import regular_price
from storage.outbox import OutboxRow, outbox_values
from storage.sql.bulk import new_row
from storage.sql.driver_pool import DriverPool

OUTBOX = OutboxRow.__table__
_UNITS = """
SELECT p.id, p.shop_id, p.name, p.status, p.base_price,
       v.id, v.price, v.archived, CAST(v.options AS text), s.status
FROM products AS p
JOIN variants AS v ON v.product_id = p.id
JOIN shops AS s ON s.id = p.shop_id
WHERE p.id = ANY(CAST($1 AS varchar[]))
"""


class ExpressCheckout:
    """The fast path of `CheckoutService.checkout` on PostgreSQL; `takes` says when."""

    def __init__(
        self,
        pool: DriverPool,
        dialect: Dialect,
        payment_window: timedelta,
        events_committed: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._dialect = dialect
        self._payment_window = payment_window
        self._events_committed = events_committed

    def takes(self, method: PaymentMethod, lines: Sequence[Line] | None) -> bool:
        """Named lines at regular prices, paid by bank transfer."""
        return (
            lines is not None
            and method is PaymentMethod.BANK_TRANSFER
            and all(line.live_session_id is None and line.unit_price is None for line in lines)
        )

    async def place(
        self,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line],
        *,
        shipping_address: str = "",
        note: str = "",
    ) -> list[PlacedOrder]:
        async with self._pool.acquire() as connection:
            products = list({line.product_id for line in lines})
            units = resolve_units(lines, _units(await connection.fetch(_UNITS, products)))
            priced = merge_lines(lines, units)
            for unit in priced:
                unit.unit_price = regular_price(unit.product, unit.variant)
            holds, by_shop = arrange(priced)

            async def attempt() -> list[PlacedOrder]:
                statement = OneStatement(holds)  # first: its events come first
                staged = stage_orders(
                    buyer_id, by_shop, method, self._payment_window, shipping_address, note
                )
                events = (new_row(OUTBOX, outbox_values(order.event)) for order in staged)
                rows = [*rows_of(staged), *events]
                short = await statement.reserve_and_insert(connection, self._dialect, rows)
                raise_if_short(short, {unit.variant.id: unit for unit in priced})
                return [order.placed for order in staged]

            placed = await retrying(attempt)
        self._events_committed()
        return placed


def _units(records: Iterable[Sequence]) -> list[tuple[Record, Record, str]]:
    """The rows `resolve_units` reads: the columns of `Product` and `Variant` it and the
    pricing use, one product record per product."""
    products: dict[str, Record] = {}
    units = []
    for product_id, shop_id, name, status, base_price, *variant, shop_status in records:
        product = products.get(product_id)
        if product is None:
            product = products[product_id] = Record(
                id=product_id, shop_id=shop_id, name=name, status=status, base_price=base_price
            )
        variant_id, price, archived, options = variant
        unit = Record(
            id=variant_id,
            product_id=product_id,
            price=price,
            archived=archived,
            options=json.loads(options),
        )
        units.append((product, unit, shop_status))
    return units
