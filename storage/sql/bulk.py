"""Insert every object added to a session in one round trip (PostgreSQL) instead of one
INSERT per table: for hot paths that create several related rows at once (checkout).

On PostgreSQL the rows travel as one JSON document and a data-modifying CTE inserts
each table's share with `jsonb_populate_recordset`; foreign keys are checked at the
end of the statement, so parents and children can go together. SQLite is in-process,
where round trips cost nothing, so there each table gets one executemany INSERT.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_new(session: AsyncSession) -> None:
    """Write the session's pending new objects now and stop tracking them.

    The objects keep their attribute values for the caller to read. Use only for
    plain inserts: relationships and server-generated values are not loaded back.
    """
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for obj in list(session.new):
        table = obj.__table__
        by_table.setdefault(table, []).append(_row(obj, table))
        session.expunge(obj)
    if not by_table:
        return
    order = {table: i for i, table in enumerate(next(iter(by_table)).metadata.sorted_tables)}
    tables = sorted(by_table, key=order.__getitem__)  # parents before children
    if session.get_bind().dialect.name != "postgresql":
        for table in tables:
            await session.execute(insert(table), by_table[table])
        return
    quote = session.get_bind().dialect.identifier_preparer.quote
    steps = [  # table names come from our own metadata, quoted; the data is a parameter
        f"t{i} AS (INSERT INTO {quote(t.name)} SELECT * FROM jsonb_populate_recordset("  # noqa: S608
        f"NULL::{quote(t.name)}, CAST(:rows AS jsonb) -> {i}))"
        for i, t in enumerate(tables)
    ]
    document = json.dumps([by_table[t] for t in tables], default=_json_value)
    await session.execute(text(f"WITH {', '.join(steps)} SELECT 1"), {"rows": document})


def _row(obj, table: Table) -> dict[str, Any]:
    row = {}
    for column in table.columns:
        value = obj.__dict__.get(column.key)
        if value is None and column.default is not None and column.default.is_scalar:
            value = column.default.arg
        elif value is None and column.default is not None and column.default.is_callable:
            value = column.default.arg(None)
        row[column.key] = value
    return row


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot store {type(value).__name__} in a bulk insert")
