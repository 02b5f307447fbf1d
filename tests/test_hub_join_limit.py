"""A socket joining and leaving a session over and over: past JOIN_LIMIT joins and leaves
a window it is refused as a chatter typing too fast is, and a refused join writes no
visit row, so one socket cannot fill the visits table."""

from __future__ import annotations

import asyncio

import pytest

from live.hub import HUB, rooms
from live.hub.rooms import JOIN_LIMIT, JOIN_WINDOW
from tests.hub_support import joining
from tests.test_hub_joins import visits

pytestmark = pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)

FLOOD = 200


async def flood(socket, live_id: str) -> None:
    """Join and leave FLOOD times without acks, then wait until all were handled (a
    socket's events are handled in order)."""
    for _ in range(FLOOD):
        await socket.client.emit("session:join", joining(live_id))
        await socket.client.emit("session:leave", joining(live_id))
    await socket.call("session:leave", joining(live_id))


async def test_a_flood_of_joins_is_refused_and_writes_few_visits(api, connect, show):
    live_id = show["live_id"]
    guest = await connect()
    await flood(guest, live_id)
    await api.app[HUB].context.visits.flush()
    assert 1 <= await visits(api, live_id) <= JOIN_LIMIT // 2
    refusal = await guest.wait_for("error", lambda e: e["event"] == "session:join")
    assert refusal["code"] == "rate-limited" and refusal["message"]
    error = await guest.refused("session:join", joining(live_id), "rate-limited")
    assert 1 <= error["retry_after"] <= JOIN_WINDOW
    other = await connect()  # the limit is the flooding socket's alone
    await other.ok("session:join", joining(live_id))


async def test_after_the_window_the_socket_may_join_again(api, connect, show, monkeypatch):
    monkeypatch.setattr(rooms, "JOIN_WINDOW", 0.5)
    live_id = show["live_id"]
    guest = await connect()
    for _ in range(JOIN_LIMIT):
        await guest.ok("session:join", joining(live_id))
    await guest.refused("session:join", joining(live_id), "rate-limited")
    await asyncio.sleep(0.6)
    snapshot = (await guest.ok("session:join", joining(live_id)))["snapshot"]
    assert snapshot["viewers"] == 1  # joining again and again counted the viewer once
