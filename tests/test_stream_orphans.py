"""A live session whose publisher's server died is ended by any other process: the
publisher's process stamps the session while it streams, and every process sweeps for
stamps older than the grace period plus the lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from live.app import INGEST
from live.http.system import BACKENDS
from live.sessions.models import LiveSession, LiveStatus
from live.sessions.routes import LIVE_SESSIONS
from tests.test_streaming import show  # noqa: F401  (fixture: a seller's scheduled session)

GRACE = 0.5


@pytest.fixture
def api_settings():
    return {"stream_grace_period": GRACE}


async def stamp(api, live_id: str, seen: datetime | None) -> None:
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(
            update(LiveSession).where(LiveSession.id == live_id).values(publisher_seen_at=seen)
        )


async def row(api, live_id: str) -> LiveSession:
    async with api.app[BACKENDS].sessions() as session:
        return await session.get(LiveSession, live_id)


async def test_publishing_stamps_the_session_and_only_a_silent_one_is_ended(api, show):  # noqa: F811
    live_id = show["live"]["id"]
    hub = await api.app[INGEST].authorize("live", show["key"])
    streaming = await row(api, live_id)
    assert streaming.status == LiveStatus.LIVE and streaming.publisher_seen_at is not None
    assert await api.app[INGEST].end_orphans() == []  # stamped just now, and streaming here

    long_ago = datetime.now(UTC) - timedelta(hours=1)
    await stamp(api, live_id, long_ago)
    assert await api.app[INGEST].end_orphans() == []  # silent by its stamp, but streams here

    hub.close()  # the publisher leaves; pretend its process died before the grace timer
    await api.app[INGEST].close()
    assert (await row(api, live_id)).status == LiveStatus.LIVE
    assert await api.app[INGEST].end_orphans() == [live_id]
    assert (await row(api, live_id)).status == LiveStatus.ENDED
    assert await api.app[INGEST].end_orphans() == []


async def test_recent_and_never_streamed_sessions_are_left_live(api, show):  # noqa: F811
    live_id = show["live"]["id"]
    await api.app[LIVE_SESSIONS].go_live(live_id, "started by hand, no stream yet")
    assert await api.app[INGEST].end_orphans() == []  # never stamped
    await stamp(api, live_id, datetime.now(UTC) - timedelta(seconds=5))  # within the margin
    assert await api.app[INGEST].end_orphans() == []
    assert (await row(api, live_id)).status == LiveStatus.LIVE
