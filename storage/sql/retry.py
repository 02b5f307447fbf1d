"""Transactions run again when PostgreSQL refused them for a conflict (a deadlock or a
serialization failure) or a randomly generated value collided with an existing one:
both are gone on a second try, so the caller should not see them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger("streamcart.sql.retry")
ATTEMPTS = 4
CONFLICTS = {"40001", "40P01"}  # serialization failure, deadlock
UNIQUE_VIOLATION = "23505"
T = TypeVar("T")


async def retrying(attempt: Callable[[], Awaitable[T]], *, generated: Collection[str] = ()) -> T:
    """Run `attempt` again (a few times, briefly) when it lost a PostgreSQL deadlock or
    serialization conflict, or violated one of the unique constraints named in
    `generated` (as PostgreSQL or SQLite names them: columns filled with random
    values), whether the error comes through SQLAlchemy or straight from the driver."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except Exception as exc:
            if number == ATTEMPTS or not _retryable(exc, generated):
                raise
            log.info("transaction retried", extra={"attempt": number, "cause": sqlstate(exc)})
            await asyncio.sleep(0.005 * number)
    raise AssertionError("unreachable")


async def retrying_transaction(
    sessions: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    generated: Collection[str] = (),
) -> T:
    """Run `work` in a transaction of its own and commit it, retried as `retrying` says:
    `work` must only write to the session."""

    async def once() -> T:
        async with sessions.begin() as session:
            return await work(session)

    return await retrying(once, generated=generated)


def sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's error code, from asyncpg's error or SQLAlchemy's wrapper of it."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _retryable(exc: BaseException, generated: Collection[str]) -> bool:
    if isinstance(exc, IntegrityError) or sqlstate(exc) == UNIQUE_VIOLATION:
        text = str(getattr(exc, "orig", exc))
        return any(name in text for name in generated)
    return sqlstate(exc) in CONFLICTS
