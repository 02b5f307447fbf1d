"""Insert every object added to a session in one round trip (PostgreSQL) instead of one
INSERT per table: for hot paths that create several related rows at once (checkout).

On PostgreSQL the rows travel as one JSON document and a data-modifying CTE inserts
each table's share with `jsonb_populate_recordset`; foreign keys are checked at the
end of the statement, so parents and children can go together. SQLite is in-process,
where round trips cost nothing, so there each table gets one executemany INSERT.
`insert_steps` gives those CTE steps to callers that put more into the same statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache
from typing import Any

import orjson
from sqlalchemy import MetaData, Table, TextClause, insert, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

TableRow = tuple[Table, dict[str, Any]]
NewRows = list[tuple[Table, list[dict[str, Any]]]]


async def insert_new(session: AsyncSession, rows: Iterable[TableRow] = ()) -> None:
    """Write the session's pending new objects now, and `rows` (see `new_row`) with them,
    and stop tracking the objects.

    The objects keep their attribute values for the caller to read. Use only for
    plain inserts: relationships and server-generated values are not loaded back.
    """
    grouped = grouped_rows([*take_new(session), *rows])
    if not grouped:
        return
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        for table, table_rows in grouped:
            await session.execute(insert(table), table_rows)
        return
    statement = _insert_statement(dialect, tuple(table for table, _ in grouped))
    await session.execute(statement, {"rows": rows_document(grouped)})


def take_new(session: AsyncSession) -> list[TableRow]:
    """The session's pending new objects as rows; the objects are no longer tracked by
    the session afterwards."""
    objects = list(session.new)
    for obj in objects:
        session.expunge(obj)
    return [new_row(obj.__table__, obj.__dict__) for obj in objects]


def new_row(table: Table, values: dict[str, Any]) -> TableRow:
    """A row to insert into `table`, from values by column name; a column missing from
    `values` gets its Python-side default, or NULL. Writers that never need the ORM's
    objects build their rows with this (a mapped object cost ten times as much)."""
    row = {}
    for column in table.columns:
        value = values.get(column.key)
        if value is None and column.default is not None and column.default.is_scalar:
            value = column.default.arg
        elif value is None and column.default is not None and column.default.is_callable:
            value = column.default.arg(None)
        row[column.key] = value
    return table, row


def grouped_rows(rows: Iterable[TableRow]) -> NewRows:
    """Rows grouped per table, parents first, each table's rows in the given order."""
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for table, row in rows:
        by_table.setdefault(table, []).append(row)
    if not by_table:
        return []
    metadata = next(iter(by_table)).metadata
    order = _table_order(metadata, len(metadata.tables))
    return [(table, by_table[table]) for table in sorted(by_table, key=order.__getitem__)]


def insert_steps(
    dialect: Dialect, tables: tuple[Table, ...], *, only_if: str | None = None
) -> list[str]:
    """PostgreSQL CTE steps `t0 AS (INSERT ...)`, ... reading table i's rows from element
    i of the bound parameter `rows` (see `rows_document`). `only_if` is an SQL condition
    every INSERT obeys (e.g. "the stock was reserved" in the same statement)."""
    quote = dialect.identifier_preparer.quote
    condition = f" WHERE {only_if}" if only_if else ""
    return [  # table names come from our own metadata, quoted; the data is a parameter
        f"t{i} AS (INSERT INTO {quote(t.name)} SELECT * FROM jsonb_populate_recordset("  # noqa: S608
        f"NULL::{quote(t.name)}, CAST(:rows AS jsonb) -> {i}){condition})"
        for i, t in enumerate(tables)
    ]


def rows_document(rows: NewRows) -> str:
    """The `rows` parameter of `insert_steps`: one JSON array of rows per table (orjson:
    the standard encoder, calling back for every datetime, cost 5% of a checkout)."""
    return orjson.dumps([table_rows for _, table_rows in rows]).decode()


@lru_cache(maxsize=64)
def _insert_statement(dialect: Dialect, tables: tuple[Table, ...]) -> TextClause:
    """Built once per set of tables: parsing the text() each time cost 3% of a checkout."""
    return text(f"WITH {', '.join(insert_steps(dialect, tables))} SELECT 1")


@cache
def _table_order(metadata: MetaData, _table_count: int) -> dict[Table, int]:
    """Parents before children; computed once per set of tables (sorting the metadata
    cost 4% of a checkout), again when a module declared more."""
    return {table: i for i, table in enumerate(metadata.sorted_tables)}
