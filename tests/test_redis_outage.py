"""While Redis is down, the realtime hub and flash sales say so instead of failing: a
Socket.IO event that needs the cache is refused with `dependency-unavailable` (in its
ack, or as an `error` event when the client asked for none) on a socket that stays
open, and a flash-sale claim is placed or answered 503 with Retry-After, never 500.
Redis here is a redis-server of the test's own, stopped and started again; the shared
one is never touched."""

from __future__ import annotations

import asyncio

import pytest

from live.app import build_app
from tests.commerce_support import buyer
from tests.fault_support import PrivateRedis
from tests.hub_support import joining, open_socket, seller_on_air
from tests.test_flash import claim, shop_on, started

BUYERS = 6


@pytest.fixture
def private_redis(tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.close()


@pytest.fixture
async def api(aiohttp_client, sql_engine, sql_url, settings_for, private_redis):
    """The app with its cache, locks and Socket.IO backplane on the private Redis."""
    return await aiohttp_client(build_app(settings_for(sql_url, redis_url=private_redis.url)))


def unavailable_cache(error: dict) -> bool:
    return (
        error["code"] == "dependency-unavailable"
        and error["backend"] == "cache"
        and error["retry_after"] >= 1
    )


async def test_a_socket_event_that_needs_the_cache_is_refused_and_the_socket_stays(
    api, opened, private_redis
):
    show = await seller_on_air(api)
    ann = await buyer(api, "ann@example.com")
    socket = await open_socket(api, ann["token"], opened)
    await socket.ok("session:join", joining(show["live_id"]))
    chat = {"live_session_id": show["live_id"], "text": "Còn hàng không?"}
    await asyncio.to_thread(private_redis.stop)

    answer = await socket.call("chat:send", chat)  # its pace is counted in the cache
    assert answer["ok"] is False and unavailable_cache(answer["error"]), answer
    await socket.client.emit("chat:send", chat)  # no ack wanted: told by an `error` event
    error = await socket.wait_for("error")
    assert error["event"] == "chat:send" and unavailable_cache(error), error
    assert socket.client.connected

    await asyncio.to_thread(private_redis.start)
    assert (await socket.ok("chat:send", chat))["message"]["text"] == chat["text"]


async def test_a_flash_claim_is_placed_or_answered_503_while_redis_is_down(api, private_redis):
    shop = await shop_on(api)
    flash = await started(api, shop, quantity=BUYERS + 1, per_buyer_limit=1)
    tokens = [(await buyer(api, f"b{i}@example.com"))["token"] for i in range(BUYERS + 1)]
    await asyncio.to_thread(private_redis.stop)

    answers = await asyncio.gather(*(claim(api, token, flash) for token in tokens[:BUYERS]))
    for answer in answers:
        if answer.status == 503:
            assert (await answer.json())["code"] == "dependency-unavailable"
            assert int(answer.headers["Retry-After"]) >= 1
        else:
            assert answer.status == 201, await answer.text()

    await asyncio.to_thread(private_redis.start)
    answer = await claim(api, tokens[BUYERS], flash)
    assert answer.status == 201, await answer.text()
    placed = 1 + sum(answer.status == 201 for answer in answers)
    listed = await (await api.get(f"/api/live-sessions/{shop['live']['id']}/flash-sales")).json()
    assert listed["items"][0]["remaining"] == flash["quantity"] - placed  # a 503 took none
