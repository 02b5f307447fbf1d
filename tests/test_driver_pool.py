"""asyncpg's own pool for single-statement hot paths (PostgreSQL): it opens on first
use, hands back clean connections without a reset round trip, and reopens after close."""

from __future__ import annotations

import asyncpg
import pytest

from storage.sql.driver_pool import DriverPool


@pytest.fixture
async def pool(postgres_database):
    opened = DriverPool(postgres_database, size=1)
    yield opened
    await opened.close()


async def test_one_connection_is_reused_and_a_failed_statement_leaves_it_clean(pool):
    async with pool.acquire() as connection:
        first = await connection.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await connection.fetchval("SELECT 1 / 0")
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT pg_backend_pid()") == first
        assert not connection.is_in_transaction()


async def test_a_transaction_left_open_is_rolled_back_on_release(pool):
    async with pool.acquire() as connection:
        await connection.execute("CREATE TEMP TABLE IF NOT EXISTS left_open (n int)")
        await connection.execute("BEGIN")
        await connection.execute("INSERT INTO left_open VALUES (1)")
    async with pool.acquire() as connection:
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT count(*) FROM left_open") == 0


async def test_the_pool_opens_again_after_close(pool):
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT 1") == 1
    await pool.close()
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT 2") == 2
