"""Plain SQL statements run alike through a SQLAlchemy session or an asyncpg connection.

Logic that reads or writes a few rows inside a checkout (a live price, a session's
stock allocation) is written once against `Statements`; the general checkout runs it
in its SQLAlchemy transaction (`OnSession`), the express checkout on its asyncpg
connection (`OnDriver`, PostgreSQL only). The statements are `text()` with named
parameters; for asyncpg they are compiled once to its `$1, $2` placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import ClauseElement, TextClause
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

_ASYNCPG = asyncpg_dialect()


class Statements(Protocol):
    async def value(self, statement: TextClause, parameters: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None when there is no row."""
        ...

    async def row(self, statement: TextClause, parameters: Mapping[str, Any]) -> Any:
        """The first row (its columns by position and by name), or None."""
        ...

    async def execute(self, statement: TextClause, parameters: Mapping[str, Any]) -> None: ...


class OnSession:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def value(self, statement: TextClause, parameters: Mapping[str, Any]) -> Any:
        return await self._session.scalar(statement, dict(parameters))

    async def row(self, statement: TextClause, parameters: Mapping[str, Any]) -> Any:
        row = (await self._session.execute(statement, dict(parameters))).first()
        return None if row is None else row._mapping

    async def execute(self, statement: TextClause, parameters: Mapping[str, Any]) -> None:
        await self._session.execute(statement, dict(parameters))


class OnDriver:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def value(self, statement: TextClause, parameters: Mapping[str, Any]) -> Any:
        sql, names = driver_sql(statement)
        return await self._connection.fetchval(sql, *(parameters[name] for name in names))

    async def row(self, statement: TextClause, parameters: Mapping[str, Any]) -> Any:
        sql, names = driver_sql(statement)
        return await self._connection.fetchrow(sql, *(parameters[name] for name in names))

    async def execute(self, statement: TextClause, parameters: Mapping[str, Any]) -> None:
        sql, names = driver_sql(statement)
        await self._connection.execute(sql, *(parameters[name] for name in names))

    async def rows(self, statement: ClauseElement, parameters: Mapping[str, Any]) -> list:
        sql, names = driver_sql(statement)
        return await self._connection.fetch(sql, *(parameters[name] for name in names))


@lru_cache(maxsize=256)
def driver_sql(statement: ClauseElement) -> tuple[str, tuple[str, ...]]:
    """`statement` (text, or a statement built from the tables) in asyncpg's
    placeholders, and its parameter names in their order."""
    compiled = statement.compile(dialect=_ASYNCPG)
    return str(compiled), tuple(compiled.positiontup or ())
