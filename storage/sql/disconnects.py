"""PostgreSQL going away surfaces as a connection failure, never as some other error.

Two ways it did not, both seen when PostgreSQL restarts under load (tests/test_faults.py):

- asyncpg lets the socket's `OSError` (connection refused or reset, a connect timeout)
  escape `connect` as it is, and SQLAlchemy passes it on unwrapped: nothing told a
  database outage from a bug in our code, and a checkout answered 500. Both pools
  (SQLAlchemy's and the `DriverPool`) connect through `connect` below, so it becomes
  asyncpg's `ConnectionFailureError` (SQLSTATE 08006), which SQLAlchemy wraps like any
  connection failure.
- A server shutting down tells its idle connections so (FATAL 57P01) before it closes
  them. A connection taken from a pool in that instant fails its next statement with
  asyncpg's `InternalClientError` ("cannot switch to state ...; another operation is in
  progress") and, not being closed yet, went back to the pool. `broken` recognises it:
  the connection is discarded and the error reported as a disconnect.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.engine import ExceptionContext


async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """`asyncpg.connect`, with an unreachable server reported as a connection failure."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as error:
        raise failure(error) from error


def failure(error: BaseException) -> asyncpg.exceptions.ConnectionFailureError:
    return asyncpg.exceptions.ConnectionFailureError(
        f"PostgreSQL connection failed: {type(error).__name__}: {error}"
    )


def broken(error: BaseException | None) -> bool:
    """Whether `error` (or the driver error SQLAlchemy wrapped) says the connection is
    out of step with its server, which only a server closing it causes."""
    while error is not None:
        if isinstance(error, asyncpg.exceptions.InternalClientError):
            return True
        error = error.__cause__
    return False


def flag_broken_connection(context: ExceptionContext) -> None:
    """SQLAlchemy `handle_error` hook: a broken connection is a disconnect, so the pool
    drops it (and the connections older than it) and the error says it was invalidated."""
    if not context.is_disconnect and broken(context.original_exception):
        context.is_disconnect = True
