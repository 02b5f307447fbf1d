"""Two server processes behind one PostgreSQL and one Redis: what a client does on one is
seen by clients on the other (emits through python-socketio's Redis manager), and
counts and limits are shared (the Redis cache)."""

from __future__ import annotations

import functools
import itertools
import uuid

import pytest

import live.app
from live.app import build_app
from live.hub import build_hub
from live.hub.chat import RATE_LIMIT
from tests.backends import REDIS_URL, require
from tests.hub_support import joining, one_stream_on_two, open_socket
from tests.test_auth import bearer

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]


@pytest.fixture
async def apps(aiohttp_client, sql_engine, sql_url, settings_for, monkeypatch):
    """Two apps on the same database and Redis, on a Socket.IO channel of their own."""
    redis_url = require(REDIS_URL, "Redis")
    channel = f"streamcart-test-{uuid.uuid4().hex}"
    monkeypatch.setattr(live.app, "build_hub", functools.partial(build_hub, channel=channel))
    settings = settings_for(sql_url, redis_url=redis_url)
    return await aiohttp_client(build_app(settings)), await aiohttp_client(build_app(settings))


async def test_clients_on_two_processes_share_one_stream(apps, opened):
    a, b = apps
    shared = await one_stream_on_two(a, b, opened)
    live_id, ann = shared.show["live_id"], shared.ann
    viewer_a, seller_b, guest_b = shared.viewer_a, shared.seller_b, shared.guest_b

    # The rate limit is shared: the same user on another process gets no fresh allowance.
    viewer_b = await open_socket(b, ann["token"], opened)
    await viewer_b.ok("session:join", joining(live_id))
    for _ in range(RATE_LIMIT - 1):
        await viewer_a.ok("chat:send", {"live_session_id": live_id, "text": "again"})
    await viewer_b.refused(
        "chat:send", {"live_session_id": live_id, "text": "more"}, "rate-limited"
    )

    # Reactions from both processes are summed into one count per second.
    like = {"live_session_id": live_id, "kind": "like"}
    for _ in range(5):
        await viewer_a.client.emit("reaction:send", like)
        await seller_b.client.emit("reaction:send", like)
    likes = 0
    while likes < 10:
        likes += (await guest_b.wait_for("reaction:counts"))["counts"]["like"]
    assert likes == 10 and len(guest_b.received("reaction:counts")) <= 2
    assert viewer_a.received("error") == seller_b.received("error") == []

    # A commerce event handled by either process reaches sockets on both.
    response = await a.post(
        "/api/orders/checkout",
        json={
            "payment_method": "cod",
            "items": [
                {
                    "product_id": shared.show["product"]["id"],
                    "quantity": 1,
                    "live_session_id": live_id,
                }
            ],
        },
        headers=bearer(ann["token"]),
    )
    assert response.status == 201, await response.text()
    for socket in (guest_b, viewer_a):
        change = await socket.wait_for("stock:changed", lambda c: c["variant_available"] == 9)
        assert change["available"] == 9
    assert (await seller_b.wait_for("sales:updated"))["orders"] == 1

    counts = viewer_a.arrivals("viewers:count")
    assert all(later - earlier > 0.9 for earlier, later in itertools.pairwise(counts)), counts
