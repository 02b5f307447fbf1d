"""Telling a backend outage from a bug, so callers can answer 503 instead of 500.

The adapters' drivers each raise their own exceptions when their server cannot be
reached or drops the connection; this is the one place that knows them (domain code
never imports a driver). `outage_of` names the backend that is down, or None when the
exception is something else; `unavailable` is the answer every transport gives then.
"""

from __future__ import annotations

import aiormq.exceptions
import asyncpg
import redis.exceptions
from sqlalchemy import exc as sql_errors

from storage.web.problems import Problem

RETRY_AFTER_SECONDS = 5

_CACHE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_BUS = (aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError)
_DATABASE = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.InterfaceError,
)


def outage_of(error: BaseException) -> str | None:
    """ "cache", "database" or "event bus" when `error` says that backend is unreachable."""
    if isinstance(error, _CACHE):
        return "cache"
    if isinstance(error, _BUS):
        return "event bus"
    if isinstance(error, sql_errors.DBAPIError):
        if error.connection_invalidated or isinstance(error.orig, _DATABASE):
            return "database"
        cause = getattr(error.orig, "__cause__", None)
        return "database" if isinstance(cause, (*_DATABASE, OSError)) else None
    if isinstance(error, _DATABASE):
        return "database"
    return None


def unavailable(error: BaseException) -> Problem | None:
    """503 `dependency-unavailable` with Retry-After when `error` is a backend outage
    (never a 500 for that), else None."""
    backend = outage_of(error)
    if backend is None:
        return None
    return Problem(
        503,
        "dependency-unavailable",
        f"The {backend} is unavailable. Try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        backend=backend,
        retry_after=RETRY_AFTER_SECONDS,
    )
