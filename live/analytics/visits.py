"""Writing viewer visits from the hub: one row per socket per session it joins.

Rows live in the database, not in a process's memory, so visits opened on one server
process and the stats read on another agree. A socket is in a session at most once
(the hub ignores a second `session:join`), so (session, socket) finds its open visit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from live.analytics.models import LiveVisit
from storage.ids import new_id


async def open_visit(
    sessions: async_sessionmaker[AsyncSession],
    live_session_id: str,
    socket_id: str,
    viewer_key: str,
    signed_in: bool,
) -> None:
    async with sessions.begin() as session:
        session.add(
            LiveVisit(
                id=new_id(),
                live_session_id=live_session_id,
                viewer_key=viewer_key,
                signed_in=signed_in,
                socket_id=socket_id,
                joined_at=datetime.now(UTC),
            )
        )


async def close_visit(
    sessions: async_sessionmaker[AsyncSession], live_session_id: str, socket_id: str
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(LiveVisit)
            .where(
                LiveVisit.live_session_id == live_session_id,
                LiveVisit.socket_id == socket_id,
                LiveVisit.left_at.is_(None),
            )
            .values(left_at=datetime.now(UTC))
        )
