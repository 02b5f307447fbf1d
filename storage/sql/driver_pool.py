"""asyncpg's own connection pool, for hot paths that run single statements.

Taking a connection from SQLAlchemy's pool through its asyncio layer costs three
greenlet switches and event-loop turns (about 0.2 ms of CPU here, a tenth of a
checkout). A path whose statements each commit on their own (no transaction, no
session state, nothing to reset) can use this pool instead. asyncpg resets a returned
connection with a round trip of its own; these connections have nothing to reset, so
that is skipped unless a transaction was left open. The pool opens on first use and keeps at most
`size` connections, beside SQLAlchemy's. A connection its server broke off is discarded
and its error reported as a connection failure (`storage/sql/disconnects.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

from storage.sql import disconnects

CLOSE_WAIT = 5.0


class DriverPool:
    def __init__(self, url: str, size: int) -> None:
        parsed = make_url(url)
        self._dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._open()
        async with pool.acquire() as connection:
            try:
                yield connection
            except Exception as error:
                if not disconnects.broken(error):
                    raise
                connection.terminate()  # out of step with its server: never reuse it
                raise disconnects.failure(error) from error

    async def close(self) -> None:
        """Close the connections, waiting CLOSE_WAIT seconds at most for those still in
        use (asyncpg would wait for ever for one that is never released)."""
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), CLOSE_WAIT)
            except TimeoutError:
                self._pool.terminate()
            self._pool = None

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._size,
                    reset=_roll_back_if_left_open,
                    connect=disconnects.connect,
                )
        return self._pool


async def _roll_back_if_left_open(connection: asyncpg.Connection) -> None:
    """Statements that commit on their own leave nothing to reset; a transaction left
    open (a caller's bug) is rolled back rather than handed to the next user."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")
