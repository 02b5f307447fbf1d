"""Async SQLAlchemy engine and sessions for SQLite (embedded) and PostgreSQL (real)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from storage.sql import disconnects

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by every package's tables (one metadata, one migration tree)."""

    metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def async_url(url: str) -> str:
    """Pick the async driver for a plain URL (postgresql:// -> asyncpg, sqlite:// -> aiosqlite)."""
    parsed = make_url(url)
    driver = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    # Up to 3 x pool_size connections, each kept once opened. (SQLAlchemy's "overflow"
    # connections beyond pool_size are closed as soon as they are returned: under a load
    # hovering around pool_size every checkout could pay for a new backend process.)
    engine = create_async_engine(
        url,
        pool_size=pool_size * 3,
        max_overflow=0,
        connect_args={"async_creator_fn": disconnects.connect},
    )
    event.listen(engine.sync_engine, "handle_error", disconnects.flag_broken_connection)
    event.listen(engine.sync_engine, "checkin", _note_idle_since)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


# Ping a pooled PostgreSQL connection before use only when it sat idle this long: a
# connection in constant use is known to be alive, and `pool_pre_ping` (three round
# trips with asyncpg: BEGIN, a ping, ROLLBACK) on every checkout cost a busy server as
# much as a checkout's own statements. A connection that still dies in use is
# discarded with the whole pool's older connections (SQLAlchemy's disconnect handling).
IDLE_BEFORE_PING = 5.0  # seconds
_IDLE_SINCE = "streamcart_idle_since"


def _note_idle_since(_dbapi_connection, record) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
    idle_since = record.info.get(_IDLE_SINCE)
    if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:  # whatever the driver raises, the connection is unusable
        raise exc.DisconnectionError("pooled connection failed its ping") from error


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Take over transaction control so BEGIN IMMEDIATE serialises writers up front
    # instead of failing with "database is locked" on lock upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
