"""PostgreSQL: a checkout's stock reservation and all its new rows in one statement.

A checkout otherwise costs a conditional UPDATE per variant and then the bulk insert
(`storage.sql.bulk`); on PostgreSQL both fit in one data-modifying CTE:

- `locked` locks the wanted variants in id order (fixed order: no deadlocks) and tells
  for each whether it can cover its quantity (not archived, `on_hand - reserved`). A
  row lock returns the newest committed version of the row, after waiting for a
  concurrent checkout, so nothing is read and then written unlocked;
- `reserved` adds every quantity to `reserved` only if all of them can be covered: the
  statement changes all the variants or none, so it is safe outside a transaction;
- `announced` stages a `stock.changed` outbox event per variant with what is left,
  the same data as `commerce.inventory.stock_changed`;
- the bulk insert steps write the orders, lines, reservations, payments, history and
  other events, but only if every variant was reserved.

It answers the variants that lacked stock and how many units each could have covered:
none when all were reserved; otherwise nothing changed. Each variant may
appear once (an UPDATE changes a row once per statement): callers with repeated
variants use `commerce.inventory.reserve_each` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Table, TextClause, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.inventory import Hold, Shortage
from storage.ids import new_id
from storage.sql.bulk import NewRows, TableRow, grouped_rows, insert_steps, rows_document, take_new
from storage.sql.statements import OnDriver

_RESERVE = """
wanted AS (
    SELECT * FROM jsonb_to_recordset(CAST(:holds AS jsonb)) AS w(
        variant_id varchar, quantity integer, shop_id varchar, product_id varchar,
        event_id varchar, occurred_at timestamptz)
),
locked AS (
    SELECT v.id, NOT v.archived AND w.quantity <= v.on_hand - v.reserved AS enough,
        CASE WHEN v.archived THEN 0 ELSE GREATEST(v.on_hand - v.reserved, 0) END AS available
    FROM variants AS v JOIN wanted AS w ON w.variant_id = v.id
    ORDER BY v.id FOR UPDATE OF v
),
complete AS (
    SELECT count(*) FILTER (WHERE enough) = (SELECT count(*) FROM wanted) AS ok FROM locked
),
reserved AS (
    UPDATE variants AS v SET reserved = v.reserved + w.quantity
    FROM wanted AS w
    WHERE v.id = w.variant_id AND (SELECT ok FROM complete)
    RETURNING v.id AS variant_id, v.on_hand - v.reserved AS available
),
announced AS (
    INSERT INTO outbox (id, type, data, occurred_at, attempts)
    SELECT w.event_id, 'stock.changed',
        json_build_object('shop_id', w.shop_id, 'product_id', w.product_id,
                          'variant_id', w.variant_id, 'available', r.available),
        w.occurred_at, 0
    FROM wanted AS w JOIN reserved AS r ON r.variant_id = w.variant_id
    WHERE (SELECT ok FROM complete)
)"""


def fits_one_statement(session: AsyncSession, holds: list[Hold]) -> bool:
    """PostgreSQL, and no variant held twice."""
    return holds_each_variant_once(holds) and session.get_bind().dialect.name == "postgresql"


def holds_each_variant_once(holds: list[Hold]) -> bool:
    """An UPDATE changes a row once per statement: a variant held twice (bought at two
    prices, from two sessions) needs a statement per hold."""
    return len({hold.variant_id for hold in holds}) == len(holds)


class OneStatement:
    """Prepared before the checkout stages anything else, so its `stock.changed` events
    are ordered before the order's own events, as with `reserve_each`."""

    def __init__(self, holds: list[Hold]) -> None:
        now = datetime.now(UTC).isoformat()
        self._holds = holds
        self._wanted = json.dumps(
            [
                {
                    "variant_id": hold.variant_id,
                    "quantity": hold.quantity,
                    "shop_id": hold.shop_id,
                    "product_id": hold.product_id,
                    "event_id": new_id(),
                    "occurred_at": now,
                }
                for hold in holds
            ]
        )

    async def reserve_and_insert_new(
        self, session: AsyncSession, rows: Iterable[TableRow] = ()
    ) -> Shortage | None:
        """Reserve the holds and insert the session's new objects and `rows` in one
        statement; returns the first hold (in the given order) that could not be
        covered, in which case nothing changed."""
        grouped = grouped_rows([*take_new(session), *rows])
        statement = _statement(session.get_bind().dialect, tuple(t for t, _ in grouped))
        short = await session.execute(statement, self._parameters(grouped))
        return self._first_of({variant_id: available for variant_id, available in short})

    async def reserve_and_insert(
        self, connection, dialect: Dialect, rows: Iterable[TableRow]
    ) -> Shortage | None:
        """The same on an asyncpg connection, outside any transaction: the statement
        commits on its own, all of it or none."""
        grouped = grouped_rows(rows)
        statement = _statement(dialect, tuple(table for table, _ in grouped))
        short = await OnDriver(connection).rows(statement, self._parameters(grouped))
        return self._first_of({variant_id: available for variant_id, available in short})

    def _parameters(self, rows: NewRows) -> dict[str, str]:
        return {"holds": self._wanted, "rows": rows_document(rows)}

    def _first_of(self, short: dict[str, int]) -> Shortage | None:
        return next(
            (Shortage(h, short[h.variant_id]) for h in self._holds if h.variant_id in short),
            None,
        )


@lru_cache(maxsize=64)
def _statement(dialect: Dialect, tables: tuple[Table, ...]) -> TextClause:
    """Built once per set of tables: parsing the text() each time cost 3% of a checkout.
    It answers the variants that lacked stock, with what each had."""
    steps = insert_steps(dialect, tables, only_if="(SELECT ok FROM complete)")
    ctes = ", ".join([_RESERVE, *steps])  # our own SQL; the data are parameters
    return text(
        f"WITH {ctes} SELECT w.variant_id, COALESCE(l.available, 0) FROM wanted AS w "  # noqa: S608
        "LEFT JOIN locked AS l ON l.id = w.variant_id WHERE l.enough IS NOT TRUE"
    )
