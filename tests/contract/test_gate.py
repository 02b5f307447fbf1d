"""Stock gate port contract: every adapter must pass the same tests.

Checks, against `MemoryGate` and `RedisGate` alike: an unknown stock is refused and
left alone; `take`'s verdicts and their order (window, then stock, then the holder's
limit); the pending attempts that `settle` and `give_back` resolve (units restored
once only); `resync` from the database's truth (pending counted on top, dropped ones
not, `only_if_absent`); and that
concurrent takes, also from two Redis clients, never sell more than the stock.
For Redis also: the keys expire, share one hash tag, and stay under their prefix.

Redis tests run under a unique key prefix each and delete their keys afterwards,
so they never touch other data in the database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as redis
from redis.crc import key_slot

from storage.gate import (
    Decision,
    MemoryGate,
    Pending,
    RedisGate,
    StockGate,
    Verdict,
    Window,
    make_gate,
)
from storage.gate.port import KEEP_AFTER_WINDOW_MS
from tests.backends import REDIS_URL, fresh_redis_prefix, require

OPENS = int(time.time() * 1000)
CLOSES = OPENS + 3_600_000
DURING = OPENS + 1_000  # a moment inside every window these tests load


def new_id() -> str:
    """Stocks, holders and attempts are opaque strings: use UUID-like ones."""
    return str(uuid.uuid4())


@pytest.fixture
async def raw_redis() -> AsyncIterator[redis.Redis]:
    client = redis.from_url(require(REDIS_URL, "Redis"))
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def gate(request) -> AsyncIterator[StockGate]:
    async with AsyncExitStack() as stack:
        adapter: StockGate
        if request.param == "memory":
            adapter = MemoryGate()
        else:
            prefix = await stack.enter_async_context(fresh_redis_prefix())
            adapter = RedisGate(REDIS_URL, prefix=prefix)
        stack.push_async_callback(adapter.close)
        yield adapter


def window(quantity: int = 5, per_holder: int = 2) -> Window:
    return Window(quantity, per_holder, OPENS, CLOSES)


async def load(
    gate: StockGate,
    quantity: int = 5,
    per_holder: int = 2,
    *,
    taken: int = 0,
    holders: dict[str, int] | None = None,
) -> str:
    """A new stock, loaded into the gate as `resync` would from the database."""
    stock = new_id()
    loaded = await gate.resync(stock, window(quantity, per_holder), taken, holders or {}, [])
    assert loaded is True
    return stock


async def take(
    gate: StockGate, stock: str, holder: str, quantity: int = 1, at_ms: int = DURING
) -> tuple[Decision, str]:
    """One attempt under a fresh attempt id: its decision and the id."""
    attempt = new_id()
    return await gate.take(stock, holder, quantity, attempt, at_ms), attempt


async def left(gate: StockGate, stock: str) -> int:
    state = await gate.state(stock)
    assert state is not None
    return state.left


async def pending(gate: StockGate, stock: str) -> dict[str, Pending]:
    state = await gate.state(stock)
    assert state is not None
    return state.pending


# Unknown stocks


async def test_unknown_stock_is_refused_and_left_alone(gate: StockGate) -> None:
    stock = new_id()
    decision, attempt = await take(gate, stock, new_id())
    assert decision.verdict is Verdict.UNKNOWN
    assert await gate.state(stock) is None
    assert await gate.give_back(stock, attempt) is False
    await gate.settle(stock, attempt)
    assert await gate.state(stock) is None
    assert (await take(gate, stock, new_id()))[0].verdict is Verdict.UNKNOWN


# Take's verdicts


async def test_take_refuses_outside_the_window(gate: StockGate) -> None:
    stock = await load(gate, quantity=5)
    buyer = new_id()
    early, _ = await take(gate, stock, buyer, at_ms=OPENS - 1)
    assert early == Decision(Verdict.NOT_OPEN, 5, 0)
    for at_ms in (CLOSES, CLOSES + 1):
        late, _ = await take(gate, stock, buyer, at_ms=at_ms)
        assert late == Decision(Verdict.CLOSED, 5, 0)
    assert await gate.state(stock) is not None
    assert await left(gate, stock) == 5
    assert await pending(gate, stock) == {}
    first, _ = await take(gate, stock, buyer, at_ms=OPENS)
    assert first == Decision(Verdict.WON, 4, 1)


async def test_take_refuses_when_fewer_units_are_left(gate: StockGate) -> None:
    stock = await load(gate, quantity=3, per_holder=5)
    first, second, third = new_id(), new_id(), new_id()
    assert (await take(gate, stock, first, 2))[0] == Decision(Verdict.WON, 1, 2)
    assert (await take(gate, stock, second, 2))[0] == Decision(Verdict.SOLD_OUT, 1, 0)
    assert (await take(gate, stock, second, 1))[0] == Decision(Verdict.WON, 0, 1)
    assert (await take(gate, stock, third, 1))[0] == Decision(Verdict.SOLD_OUT, 0, 0)
    assert await left(gate, stock) == 0


async def test_take_refuses_over_the_holders_limit(gate: StockGate) -> None:
    regular, newcomer = new_id(), new_id()
    stock = await load(gate, quantity=10, per_holder=2, holders={regular: 1})
    assert (await take(gate, stock, regular, 2))[0] == Decision(Verdict.OVER_LIMIT, 10, 1)
    assert (await take(gate, stock, regular, 1))[0] == Decision(Verdict.WON, 9, 2)
    assert (await take(gate, stock, regular, 1))[0] == Decision(Verdict.OVER_LIMIT, 9, 2)
    assert (await take(gate, stock, newcomer, 3))[0] == Decision(Verdict.OVER_LIMIT, 9, 0)
    assert (await take(gate, stock, newcomer, 2))[0] == Decision(Verdict.WON, 7, 2)


async def test_window_is_checked_before_stock_and_stock_before_limit(
    gate: StockGate,
) -> None:
    at_limit = new_id()
    stock = await load(gate, quantity=2, per_holder=1, taken=1, holders={at_limit: 1})
    assert (await take(gate, stock, new_id()))[0].verdict is Verdict.WON
    assert (await take(gate, stock, at_limit))[0] == Decision(Verdict.SOLD_OUT, 0, 1)
    assert (await take(gate, stock, at_limit, at_ms=OPENS - 1))[0].verdict is (Verdict.NOT_OPEN)
    assert (await take(gate, stock, at_limit, at_ms=CLOSES))[0].verdict is Verdict.CLOSED


# Pending attempts: settle and give_back


async def test_won_take_is_pending_until_settled(gate: StockGate) -> None:
    stock = await load(gate, quantity=5, per_holder=2)
    buyer = new_id()
    decision, attempt = await take(gate, stock, buyer, 2, at_ms=DURING + 123)
    assert decision == Decision(Verdict.WON, 3, 2)
    assert await pending(gate, stock) == {attempt: Pending(buyer, 2, DURING + 123)}
    await gate.settle(stock, attempt)
    assert await pending(gate, stock) == {}
    assert await left(gate, stock) == 3
    assert await gate.give_back(stock, attempt) is False
    assert await left(gate, stock) == 3
    assert (await take(gate, stock, buyer))[0] == Decision(Verdict.OVER_LIMIT, 3, 2)


async def test_give_back_returns_the_units_once(gate: StockGate) -> None:
    stock = await load(gate, quantity=5, per_holder=2)
    buyer, other = new_id(), new_id()
    _, attempt = await take(gate, stock, buyer, 2)
    _, kept = await take(gate, stock, other, 1)
    assert await left(gate, stock) == 2
    assert await gate.give_back(stock, attempt) is True
    assert await left(gate, stock) == 4
    assert set(await pending(gate, stock)) == {kept}
    assert await gate.give_back(stock, attempt) is False
    assert await gate.give_back(stock, new_id()) is False
    assert await left(gate, stock) == 4
    assert (await take(gate, stock, buyer, 2))[0] == Decision(Verdict.WON, 2, 2)


async def test_holder_with_separator_survives_give_back(gate: StockGate) -> None:
    stock = await load(gate, quantity=5, per_holder=1)
    buyer = f"{new_id()}|7|{new_id()}|"
    _, attempt = await take(gate, stock, buyer)
    assert (await pending(gate, stock))[attempt].holder == buyer
    assert await gate.give_back(stock, attempt) is True
    assert (await take(gate, stock, buyer))[0] == Decision(Verdict.WON, 4, 1)


# Resync


async def test_resync_counts_pending_on_top_of_the_database(gate: StockGate) -> None:
    stock = await load(gate, quantity=10, per_holder=3)
    first, second, third = new_id(), new_id(), new_id()
    _, first_attempt = await take(gate, stock, first, 2)
    _, second_attempt = await take(gate, stock, second, 1)
    loaded = await gate.resync(stock, window(10, 3), 4, {first: 1, third: 3}, [])
    assert loaded is True
    assert await left(gate, stock) == 10 - 4 - 3
    assert set(await pending(gate, stock)) == {first_attempt, second_attempt}
    assert (await take(gate, stock, first))[0] == Decision(Verdict.OVER_LIMIT, 3, 3)
    assert (await take(gate, stock, third))[0] == Decision(Verdict.OVER_LIMIT, 3, 3)
    assert (await take(gate, stock, second, 2))[0] == Decision(Verdict.WON, 1, 3)


async def test_resync_drops_the_listed_attempts(gate: StockGate) -> None:
    stock = await load(gate, quantity=10, per_holder=3)
    first, second = new_id(), new_id()
    _, dropped = await take(gate, stock, first, 2)
    _, kept = await take(gate, stock, second, 1)
    await gate.resync(stock, window(10, 3), 0, {}, [dropped, new_id()])
    assert await left(gate, stock) == 10 - 1
    assert set(await pending(gate, stock)) == {kept}
    assert await gate.give_back(stock, dropped) is False
    assert (await take(gate, stock, first, 3))[0] == Decision(Verdict.WON, 6, 3)
    assert (await take(gate, stock, second, 3))[0] == Decision(Verdict.OVER_LIMIT, 6, 1)


async def test_resync_does_not_count_a_written_attempt_twice(gate: StockGate) -> None:
    stock = await load(gate, quantity=5, per_holder=2)
    buyer = new_id()
    _, attempt = await take(gate, stock, buyer)
    await gate.resync(stock, window(5, 2), 1, {buyer: 1}, [attempt])
    assert await left(gate, stock) == 5 - 1
    assert await pending(gate, stock) == {}
    assert (await take(gate, stock, buyer))[0] == Decision(Verdict.WON, 3, 2)


async def test_resync_replaces_holders_and_window(gate: StockGate) -> None:
    stock = await load(gate, quantity=5, per_holder=1)
    buyer = new_id()
    _, attempt = await take(gate, stock, buyer)
    await gate.settle(stock, attempt)
    assert (await take(gate, stock, buyer))[0].verdict is Verdict.OVER_LIMIT
    await gate.resync(stock, Window(8, 1, OPENS, DURING + 1), 1, {}, [])
    assert (await take(gate, stock, buyer))[0] == Decision(Verdict.WON, 6, 1)
    assert (await take(gate, stock, buyer, at_ms=DURING + 1))[0].verdict is Verdict.CLOSED


async def test_resync_only_if_absent(gate: StockGate) -> None:
    stock, buyer = new_id(), new_id()
    assert await gate.resync(stock, window(5, 2), 1, {}, [], only_if_absent=True) is True
    _, attempt = await take(gate, stock, buyer)
    before = await gate.state(stock)
    assert before is not None and before.left == 3
    ignored = await gate.resync(
        stock, Window(9, 1, OPENS, DURING), 0, {buyer: 1}, [attempt], only_if_absent=True
    )
    assert ignored is False
    assert await gate.state(stock) == before
    assert (await take(gate, stock, buyer))[0] == Decision(Verdict.WON, 2, 2)


# Concurrency


async def rush(gates: list[StockGate], stock: str, units: int) -> None:
    """300 concurrent single-unit takes from 150 holders (limit 1, each trying twice
    in a row) spread over `gates`: exactly `units` are won, by each holder at most
    once, and they are the pending attempts."""
    holders = [new_id() for _ in range(150)]
    attempts = [(holders[i // 2], new_id()) for i in range(300)]
    decisions = await asyncio.gather(
        *(
            gates[i % len(gates)].take(stock, holder, 1, attempt, DURING)
            for i, (holder, attempt) in enumerate(attempts)
        )
    )
    verdicts = Counter(d.verdict for d in decisions)
    assert verdicts[Verdict.WON] == units
    assert set(verdicts) <= {Verdict.WON, Verdict.SOLD_OUT, Verdict.OVER_LIMIT}
    both = zip(attempts, decisions, strict=True)
    won = {a: h for (h, a), d in both if d.verdict is Verdict.WON}
    assert max(Counter(won.values()).values()) == 1
    assert sorted(d.left for d in decisions if d.verdict is Verdict.WON) == list(range(units))
    state = await gates[0].state(stock)
    assert state is not None and state.left == 0
    assert {a: p.holder for a, p in state.pending.items()} == won


async def test_concurrent_takes_sell_exactly_the_stock(gate: StockGate) -> None:
    await rush([gate], await load(gate, quantity=20, per_holder=1), 20)


@pytest.mark.redis
async def test_two_redis_clients_sell_exactly_the_stock(redis_prefix: str) -> None:
    async with AsyncExitStack() as stack:
        gates: list[StockGate] = []
        for _ in range(2):
            gates.append(RedisGate(REDIS_URL, prefix=redis_prefix))
            stack.push_async_callback(gates[-1].close)
        stock = await load(gates[0], quantity=20, per_holder=1)
        await rush(gates, stock, 20)
        assert await gates[1].state(stock) == await gates[0].state(stock)


# Redis only


@pytest.mark.redis
async def test_redis_keys_expire_and_share_a_hash_tag(
    redis_prefix: str, raw_redis: redis.Redis
) -> None:
    gate = RedisGate(REDIS_URL, prefix=redis_prefix)
    try:
        stock = await load(gate, quantity=5, per_holder=1, holders={new_id(): 1})
        await take(gate, stock, new_id())
    finally:
        await gate.close()
    keys = [key async for key in raw_redis.scan_iter(match=f"{redis_prefix}*")]
    assert len(keys) == 3
    assert len({key_slot(key) for key in keys}) == 1
    assert all(f"{{{stock}}}".encode() in key for key in keys)
    now_ms = int(time.time() * 1000)
    longest = max(CLOSES, now_ms) - now_ms + KEEP_AFTER_WINDOW_MS
    for key in keys:
        assert longest - 60_000 < await raw_redis.pttl(key) <= longest


@pytest.mark.redis
async def test_redis_prefixes_keep_gates_apart(redis_prefix: str) -> None:
    mine = RedisGate(REDIS_URL, prefix=redis_prefix)
    theirs = RedisGate(REDIS_URL, prefix=redis_prefix + "other:")
    try:
        stock = await load(mine, quantity=5)
        assert (await take(mine, stock, new_id()))[0].verdict is Verdict.WON
        assert await theirs.state(stock) is None
        assert (await take(theirs, stock, new_id()))[0].verdict is Verdict.UNKNOWN
        assert await theirs.resync(stock, window(7), 0, {}, []) is True
        assert await left(theirs, stock) == 7
        assert await left(mine, stock) == 4
    finally:
        await mine.close()
        await theirs.close()


async def test_make_gate_picks_the_adapter() -> None:
    memory = make_gate("")
    shared = make_gate("redis://127.0.0.1:1/0")
    assert isinstance(memory, MemoryGate)
    assert isinstance(shared, RedisGate)
    await memory.close()
    await shared.close()
