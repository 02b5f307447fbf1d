"""Voucher claims on two real `streamcart serve` processes sharing PostgreSQL and Redis:
2,000 racing claims for a drop of 100 give out exactly 100, none to a buyer beyond the
per-buyer limit, whichever process each claim reached; a process killed after its gate
decided a claim but before it was written neither loses nor doubles the voucher."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import func, select

from commerce.vouchers.models import Voucher, VoucherClaim
from live.vouchers.gatekeeper import voucher_stock
from storage.gate import RedisGate
from storage.sql import session_factory
from tests import test_flash_processes as flash_processes
from tests.backends import REDIS_URL
from tests.bus_support import eventually
from tests.hub_support import seller_on_air
from tests.server_process import ServerApi, replica_settings, serving
from tests.test_auth import assert_problem
from tests.test_flash import many_buyers
from tests.test_flash_processes import PENDING_SECONDS, holding_the_row, pending_count
from tests.test_vouchers import claim, dropped

# The flash-sale processes' fixtures: servers started (and restarted) by name.
http, settings, start = flash_processes.http, flash_processes.settings, flash_processes.start

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]

BUYERS = 200
ATTEMPTS_PER_BUYER = 10  # 2,000 claims in all
TOTAL = 100
PER_BUYER_LIMIT = 2
IN_FLIGHT = 200  # requests open at once, across both processes
REFUSALS = {"voucher-all-claimed", "voucher-limit-reached"}


@pytest.fixture
async def servers(sql_engine, sql_url, tmp_path) -> AsyncIterator[tuple[ServerApi, ...]]:
    async with serving(tmp_path, ("a", "b"), replica_settings(sql_url)) as pair:
        yield pair


async def test_racing_claims_on_two_processes_give_out_exactly_the_total(servers, sql_engine):
    a, b = servers
    show = await seller_on_air(a)
    people = await many_buyers(b, BUYERS)
    voucher = await dropped(a, show, total=TOTAL, per_buyer_limit=PER_BUYER_LIMIT)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def attempt(server: ServerApi, person: dict) -> tuple[dict, int, dict]:
        async with gate:
            response = await claim(server, show, voucher, person["token"])
            return person, response.status, await response.json()

    # Each buyer's attempts alternate between the processes.
    answers = await asyncio.gather(
        *(attempt(servers[n % 2], person) for n in range(ATTEMPTS_PER_BUYER) for person in people)
    )

    statuses = Counter(status for _, status, _ in answers)
    explained = "\n".join(s.server.explain(f"claims answered {statuses}") for s in servers)
    assert statuses == {201: TOTAL, 409: len(answers) - TOTAL}, explained
    assert {body["code"] for _, status, body in answers if status == 409} <= REFUSALS
    winners = Counter(person["user"]["id"] for person, status, _ in answers if status == 201)
    assert max(winners.values()) <= PER_BUYER_LIMIT
    won_claims = {body["claim_id"] for _, status, body in answers if status == 201}
    assert len(won_claims) == TOTAL

    async with session_factory(sql_engine)() as session:
        assert (await session.get(Voucher, voucher["id"])).claimed == TOTAL
        stored = (
            await session.execute(
                select(VoucherClaim.id, VoucherClaim.buyer_id).where(
                    VoucherClaim.voucher_id == voucher["id"]
                )
            )
        ).all()
        count = await session.scalar(select(func.count()).select_from(VoucherClaim))
    assert count == TOTAL and {claim_id for claim_id, _ in stored} == won_claims
    assert Counter(buyer_id for _, buyer_id in stored) == winners


async def test_a_process_killed_between_deciding_and_writing_loses_no_voucher(
    start, sql_engine, redis_prefix
):
    first, second = await start("first"), await start("second")
    show = await seller_on_air(first)
    ann, bob, carl = await many_buyers(first, 3)
    voucher = await dropped(first, show, total=2, per_buyer_limit=1)
    stock = voucher_stock(voucher["id"])
    gate = RedisGate(REDIS_URL, prefix=redis_prefix)
    try:
        async with holding_the_row(sql_engine, "vouchers", voucher["id"]):  # writes wait
            doomed = asyncio.create_task(claim(first, show, voucher, ann["token"]))
            await eventually(lambda: pending_count(gate, stock, 1))
            first.server.process.kill()  # decided in the gate, not written
            first.server.process.wait()
            with pytest.raises(aiohttp.ClientError):
                await doomed
        assert (await gate.state(stock)).left == 1  # held by the dead process
        restarted = await start("first")
        await eventually(lambda: pending_count(gate, stock, 0), within=PENDING_SECONDS * 4)
        assert (await gate.state(stock)).left == 2
        assert (await claim(restarted, show, voucher, ann["token"])).status == 201
        assert (await claim(second, show, voucher, bob["token"])).status == 201
        refused = await claim(restarted, show, voucher, carl["token"])
        await assert_problem(refused, 409, "voucher-all-claimed")
    finally:
        await gate.close()
    async with session_factory(sql_engine)() as session:
        assert (await session.get(Voucher, voucher["id"])).claimed == 2
        holders = await session.scalars(select(VoucherClaim.buyer_id))
        assert sorted(holders) == sorted([ann["user"]["id"], bob["user"]["id"]])
