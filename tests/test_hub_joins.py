"""Joining a live session at the scale of a popular stream: once a session's snapshot is
built, a join reads nothing from the database; the snapshot follows every change the
room hears of, and, within a couple of seconds, changes nobody announced; the visits
behind the viewer stats are written in batches."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update

from live.analytics.models import LiveVisit
from live.http.system import BACKENDS
from live.hub import snapshots
from live.sessions.models import LiveSession
from tests.bus_support import eventually
from tests.commerce_support import buyer
from tests.hub_support import joining
from tests.test_hub import chat, joined

pytestmark = pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)


async def test_a_join_reads_nothing_from_the_database_once_the_snapshot_is_built(
    api, connect, show, statements
):
    live_id = show["live_id"]
    ann = await buyer(api, "ann@example.com")
    await joined(connect, live_id)  # builds the snapshot
    await joined(connect, live_id, ann["token"])  # and learns the shop's team
    statements.clear()
    for token in (None, None, ann["token"]):
        _, snapshot = await joined(connect, live_id, token)
        assert snapshot["live_session_id"] == live_id and snapshot["status"] == "live"
    assert statements == []


async def test_every_announced_change_reaches_the_next_snapshot(connect, show):
    live_id, product_id = show["live_id"], show["product"]["id"]
    seller, first = await joined(connect, live_id, show["token"])
    assert first["pinned"] is None and first["messages"] == []
    await seller.ok("product:pin", {"live_session_id": live_id, "product_id": product_id})
    _, pinned = await joined(connect, live_id)
    assert pinned["pinned"]["product_id"] == product_id
    await seller.ok("chat:send", chat(live_id, "xin chào"))
    _, chatted = await joined(connect, live_id)
    assert [m["text"] for m in chatted["messages"]] == ["xin chào"]
    assert chatted["pinned"]["product_id"] == product_id
    await seller.ok("chat:slow_mode", {"live_session_id": live_id, "seconds": 5})
    _, slowed = await joined(connect, live_id)
    assert slowed["slow_mode_seconds"] == 5


async def test_an_unannounced_change_shows_within_the_snapshots_age(
    api, connect, show, monkeypatch
):
    monkeypatch.setattr(snapshots, "MAX_AGE_SECONDS", 0.3)
    live_id = show["live_id"]
    _, before = await joined(connect, live_id)
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(
            update(LiveSession).where(LiveSession.id == live_id).values(title="Giờ vàng")
        )
    await asyncio.sleep(0.4)
    _, after = await joined(connect, live_id)
    assert before["title"] != "Giờ vàng" and after["title"] == "Giờ vàng"


async def test_an_unknown_session_is_refused_and_not_joined(connect):
    socket = await connect()
    await socket.refused(
        "session:join", joining("01939c3e-0000-7000-8000-000000000000"), "live-session-not-found"
    )


async def test_visits_are_written_in_batches_and_closed_on_leave(api, connect, show):
    live_id = show["live_id"]
    sockets = [(await joined(connect, live_id))[0] for _ in range(5)]
    await eventually(lambda: _equals(visits(api, live_id, open_only=True), 5), within=5)
    for socket in sockets[:2]:
        await socket.ok("session:leave", joining(live_id))
    await eventually(lambda: _equals(visits(api, live_id, open_only=True), 3), within=5)
    assert await visits(api, live_id) == 5


async def _equals(value, expected) -> bool:
    return await value == expected


async def visits(api, live_id: str, *, open_only: bool = False) -> int:
    query = select(func.count()).select_from(LiveVisit).where(LiveVisit.live_session_id == live_id)
    if open_only:
        query = query.where(LiveVisit.left_at.is_(None))
    async with api.app[BACKENDS].sessions() as session:
        return await session.scalar(query)
