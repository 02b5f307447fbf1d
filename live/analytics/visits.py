"""Writing viewer visits from the hub: one row per socket per session it joins.

Rows live in the database, not in a process's memory, so visits opened on one server
process and the stats read on another agree. A socket is in a session at most once
(the hub ignores a second `session:join`), so (session, socket) finds its open visit.

A join must not wait for the database, so the hub only queues each visit opened or
closed; `VisitRecorder` writes what is queued every `interval` seconds in one
transaction (one multi-row INSERT, one batched UPDATE), and once more when the app
stops. Stats on the same process flush first; another process's visits appear within
`interval`. If the database is down the batch is kept for the next round, up to
MAX_QUEUED visits (then the oldest are dropped, with a warning).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from live.analytics.models import LiveVisit
from storage.ids import new_id
from storage.periodic import Periodic

log = logging.getLogger("streamcart.analytics")
MAX_QUEUED = 100_000
VISITS = LiveVisit.__table__
_CLOSE = (
    update(VISITS)
    .where(
        VISITS.c.live_session_id == bindparam("session"),
        VISITS.c.socket_id == bindparam("socket"),
        VISITS.c.left_at.is_(None),
    )
    .values(left_at=bindparam("at"))
)


class VisitRecorder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float = 0.25) -> None:
        self._sessions = sessions
        self._opened: list[dict[str, Any]] = []
        self._closed: list[dict[str, Any]] = []
        self._writing = asyncio.Lock()
        self._periodic = Periodic("visit-recorder", interval, self.flush)

    def open(self, live_session_id: str, socket_id: str, viewer_key: str, signed_in: bool) -> None:
        self._opened.append(
            {
                "id": new_id(),
                "live_session_id": live_session_id,
                "viewer_key": viewer_key,
                "signed_in": signed_in,
                "socket_id": socket_id,
                "joined_at": datetime.now(UTC),
                "left_at": None,
            }
        )
        self._bound(self._opened)

    def close(self, live_session_id: str, socket_id: str) -> None:
        self._closed.append(
            {"session": live_session_id, "socket": socket_id, "at": datetime.now(UTC)}
        )
        self._bound(self._closed)

    async def flush(self) -> None:
        """Write everything queued so far, in one transaction."""
        async with self._writing:
            opened, self._opened = self._opened, []
            closed, self._closed = self._closed, []
            if not opened and not closed:
                return
            try:
                async with self._sessions.begin() as session:
                    if opened:
                        await session.execute(insert(VISITS), opened)
                    if closed:  # after the inserts: a visit may open and close in one batch
                        await session.execute(_CLOSE, closed)
            except IntegrityError:  # a session deleted meanwhile: this batch never will go
                log.warning("visits dropped: %d refused by the database", len(opened))
            except BaseException:
                self._opened[:0] = opened  # kept for the next round, in order
                self._closed[:0] = closed
                raise

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()  # lets a flush in progress finish
        await self.flush()

    @staticmethod
    def _bound(queue: list[dict[str, Any]]) -> None:
        if len(queue) > MAX_QUEUED:
            del queue[: len(queue) - MAX_QUEUED]
            log.warning("visits dropped: the database has not taken them for a while")
