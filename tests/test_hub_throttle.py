"""Thinning pushes per key: the first at once, a window's others as one push of the
newest data at its end, keys independent of each other."""

from __future__ import annotations

import asyncio

from live.hub.throttle import Throttle

INTERVAL = 0.1


async def pushed_by(offers, *, settle: float = 3 * INTERVAL) -> list:
    pushed = []

    async def push(data) -> None:
        pushed.append((asyncio.get_running_loop().time(), data))

    throttle = Throttle(push, INTERVAL)
    started = asyncio.get_running_loop().time()
    for key, data in offers:
        await throttle.offer(key, data)
    await asyncio.sleep(settle)
    await throttle.close()
    return [(round(at - started, 2), data) for at, data in pushed]


async def test_a_burst_becomes_the_first_and_then_the_newest():
    pushes = await pushed_by(("unit", n) for n in range(50))
    assert [data for _, data in pushes] == [0, 49]
    assert pushes[0][0] < INTERVAL / 2 and pushes[1][0] >= INTERVAL * 0.9


async def test_keys_do_not_wait_for_each_other():
    pushes = await pushed_by([("a", 1), ("b", 1), ("a", 2), ("b", 2), ("c", 1)])
    now = [data for at, data in pushes if at < INTERVAL / 2]
    assert sorted(now) == [1, 1, 1]  # a, b and c at once
    assert sorted(data for at, data in pushes if at >= INTERVAL / 2) == [2, 2]


def recorded() -> tuple[list, Throttle]:
    pushed: list = []

    async def push(data) -> None:
        pushed.append(data)

    return pushed, Throttle(push, INTERVAL)


async def test_after_a_quiet_interval_the_next_change_goes_at_once():
    pushed, throttle = recorded()
    await throttle.offer("unit", 1)
    await asyncio.sleep(INTERVAL * 1.5)
    await throttle.offer("unit", 2)
    assert pushed == [1, 2]
    await throttle.close()


async def test_close_drops_what_is_pending():
    pushed, throttle = recorded()
    await throttle.offer("unit", 1)
    await throttle.offer("unit", 2)
    await throttle.close()
    await asyncio.sleep(INTERVAL * 1.5)
    assert pushed == [1]
