"""PostgreSQL pool: a connection that died while idle is replaced before use, without
pinging connections in constant use."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

import storage.sql.engine as engine_module
from storage.sql import make_engine


async def backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(text("SELECT pg_backend_pid()"))


async def terminate(url: str, pid: int) -> None:
    admin = make_url(url)
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, database=admin.database
    )
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_connection_killed_while_idle_is_replaced_before_use(postgres_database, monkeypatch):
    monkeypatch.setattr(engine_module, "IDLE_BEFORE_PING", 0.0)  # everything counts as idle
    engine = make_engine(postgres_database, pool_size=1)
    try:
        first = await backend_pid(engine)
        await terminate(postgres_database, first)
        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_connection_in_recent_use_is_not_pinged_and_a_dead_one_is_discarded(
    postgres_database, monkeypatch
):
    monkeypatch.setattr(engine_module, "IDLE_BEFORE_PING", 3600.0)
    engine = make_engine(postgres_database, pool_size=1)
    try:
        first = await backend_pid(engine)
        await terminate(postgres_database, first)
        with pytest.raises(DBAPIError):  # not pinged: the failure surfaces once...
            await backend_pid(engine)
        assert await backend_pid(engine) != first  # ...and the dead connection is gone
    finally:
        await engine.dispose()
