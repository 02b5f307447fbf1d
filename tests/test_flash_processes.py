"""Flash-sale claims on two real `streamcart serve` processes sharing PostgreSQL and
Redis: a process killed after its gate decided a winner but before the order was
written neither loses nor doubles the unit. (Racing claims over two real processes:
tests/test_hub_processes.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, text

from commerce.orders.models import Order
from live.sessions.models import FlashClaim, FlashSale
from storage.gate import RedisGate
from storage.sql import session_factory
from tests.backends import REDIS_URL
from tests.bus_support import eventually
from tests.server_process import ServerApi, ServerProcess, clean_env
from tests.test_auth import assert_problem
from tests.test_flash import FLASH, claim, many_buyers, shop_on, started

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]
PENDING_SECONDS = 6.0  # how long a decided claim may stay unwritten before it goes back


@pytest.fixture
def settings(sql_engine, sql_url, redis_prefix) -> dict[str, str]:
    return {
        "STREAMCART_DATABASE_URL": sql_url,
        "STREAMCART_DATABASE_POOL_SIZE": "5",
        "STREAMCART_REDIS_URL": REDIS_URL,
        "STREAMCART_REDIS_PREFIX": redis_prefix,
        "STREAMCART_JWT_SECRET": secrets.token_urlsafe(32),
        "STREAMCART_PASSWORD_TIME_COST": "1",
        "STREAMCART_PASSWORD_MEMORY_KIB": "1024",
        "STREAMCART_SHUTDOWN_TIMEOUT": "2",
        "STREAMCART_RECORD_STREAMS": "false",
        "STREAMCART_FLASH_PENDING_SECONDS": str(PENDING_SECONDS),
    }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


@pytest.fixture
async def start(tmp_path: Path, settings, http) -> AsyncIterator:
    """`await start(name)`: a ready server of that name (a restart reuses its data dir);
    every one is stopped at the end."""
    started_processes: list[ServerProcess] = []

    async def start_one(name: str) -> ServerApi:
        env = clean_env(tmp_path / name, **settings)
        process = ServerProcess(env, tmp_path / f"{name}-{len(started_processes)}.log")
        started_processes.append(process)
        await process.wait_ready(http)
        return ServerApi(process, http)

    yield start_one
    await asyncio.gather(*(p.stop() for p in started_processes))


async def test_a_process_killed_between_deciding_and_writing_loses_no_unit(
    start, sql_engine, redis_prefix
):
    first, second = await start("first"), await start("second")
    shop = await shop_on(first)
    ann, bob, carl = await many_buyers(first, 3)
    flash = await started(first, shop, quantity=2, per_buyer_limit=1)
    gate = RedisGate(REDIS_URL, prefix=redis_prefix)
    try:
        async with holding_the_sale(sql_engine, flash["id"]):  # its write must wait
            doomed = asyncio.create_task(claim(first, ann["token"], flash))
            await eventually(lambda: pending_count(gate, flash["id"], 1))
            first.server.process.kill()  # decided in the gate, not written
            first.server.process.wait()
            with pytest.raises(aiohttp.ClientError):
                await doomed
        assert (await gate.state(flash["id"])).left == 1  # the unit is held by the dead
        restarted = await start("first")
        await eventually(lambda: pending_count(gate, flash["id"], 0), within=PENDING_SECONDS * 4)
        assert (await gate.state(flash["id"])).left == 2
        assert (await claim(restarted, ann["token"], flash)).status == 201  # hers again
        assert (await claim(second, bob["token"], flash)).status == 201
        await assert_problem(await claim(restarted, carl["token"], flash), 409, "flash-sold-out")
    finally:
        await gate.close()
    claims = await audit(sql_engine, flash["id"])
    assert claims == {ann["user"]["id"]: 1, bob["user"]["id"]: 1}


def holding_the_sale(engine, flash_id: str) -> contextlib.AbstractAsyncContextManager[None]:
    return holding_the_row(engine, "flash_sales", flash_id)


@contextlib.asynccontextmanager
async def holding_the_row(engine, table: str, row_id: str) -> AsyncIterator[None]:
    """A row (a flash sale, a voucher) locked by a transaction of the test's own, so a
    claim's conditional UPDATE waits on it."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(
            text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"),  # noqa: S608
            {"id": row_id},
        )
        try:
            yield
        finally:
            await transaction.rollback()


async def pending_count(gate: RedisGate, flash_id: str, expected: int) -> bool:
    state = await gate.state(flash_id)
    return state is not None and len(state.pending) == expected


async def audit(engine, flash_id: str) -> dict[str, int]:
    """The buyers' claimed units, after checking the sale's `sold`, the orders at the
    flash price and the claims all agree."""
    async with session_factory(engine)() as session:
        sold = await session.scalar(select(FlashSale.sold).where(FlashSale.id == flash_id))
        orders = await session.scalar(
            select(func.count()).select_from(Order).where(Order.total == FLASH)
        )
        claims = dict(
            (
                await session.execute(
                    select(FlashClaim.buyer_id, FlashClaim.quantity).where(
                        FlashClaim.flash_sale_id == flash_id, FlashClaim.quantity > 0
                    )
                )
            ).all()
        )
    assert sold == orders == sum(claims.values()), (sold, orders, claims)
    return claims
