"""The outbox relay: publishes committed outbox rows to the event bus, at least once.

A row is marked published only after the bus confirmed it, so a crash or a
broker outage means a later re-publish (consumers are idempotent on the event
id), never a lost event. A batch is published in occurred_at order without
waiting for each confirm before sending the next (one round trip per event made
a backlog of a few thousand, after a broker outage, take half a minute); the
rows up to the first failure are marked published. On a bus failure the rows
from the failing one on stay pending (sent again later, so a consumer may see
them twice), the failing row records the attempt and a short error, and the
relay backs off exponentially up to `max_backoff` before trying again, or
until the bus says it has reconnected: after a broker outage the backlog goes
out as soon as the broker is back, not up to `max_backoff` later.

On PostgreSQL rows are claimed with `FOR UPDATE SKIP LOCKED` and stay locked
until the batch commits, so replicas running their own relay publish disjoint
rows (each relay keeps order; together they may interleave). SQLite has a
single writer and `BEGIN IMMEDIATE` takes its lock, so there the batch is read
in a short transaction and the lock is released before the network round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime

from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from storage.bus.port import Event, EventBus
from storage.outbox.table import OutboxRow
from storage.outbox.writer import committed_new_events

log = logging.getLogger("streamcart.outbox")

_CREDENTIALS = re.compile(r"://[^/@\s]*@")


class OutboxRelay:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        bus: EventBus,
        poll_interval: float = 0.5,
        batch_size: int = 100,
        *,
        max_backoff: float = 30.0,
        gather: float = 0.01,
    ) -> None:
        self._sessions = session_factory
        self._bus = bus
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._max_backoff = max_backoff
        self._gather = gather
        bind = session_factory.kw.get("bind")
        self._engine = getattr(bind, "sync_engine", bind)  # to recognise our sessions' commits
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._resume = asyncio.Event()  # ends a back-off: the bus reconnected, or stop()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run in the background and wake after each commit that added outbox events."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        sa_event.listen(Session, "after_commit", self._after_commit)
        self._bus.on_reconnect(self._resume.set)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the batch in progress (bounded by the bus's publish timeout), then stop."""
        if self._task is None:
            return
        sa_event.remove(Session, "after_commit", self._after_commit)
        self._stopping.set()
        self._wake.set()
        self._resume.set()
        await self._task
        self._task = None

    def wake(self) -> None:
        """Publish soon rather than at the next poll (call from the relay's event loop)."""
        self._wake.set()

    async def run_once(self) -> int:
        """Publish one batch of pending events in order; return how many were published."""
        published, _failed = await self._publish_batch()
        return published

    async def pending(self) -> int:
        async with self._sessions() as session:
            query = select(func.count()).select_from(OutboxRow)
            return await session.scalar(query.where(OutboxRow.published_at.is_(None))) or 0

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            self._resume.clear()
            try:
                published, failed = await self._publish_batch()
            except Exception:
                log.exception("outbox relay could not read or update the outbox")
                published, failed = 0, True
            if failed:
                failures = min(failures + 1, 32)  # the cap keeps 2**n a sane float
                backoff = min(self._max_backoff, self._poll_interval * 2 ** (failures - 1))
                # Commits do not cut a back-off short: they would hammer a broker that is down.
                await _wait(self._resume, backoff)
            else:
                failures = 0
                if published < self._batch_size:
                    await _wait(self._wake, self._poll_interval)
                    # Let the commits of a busy moment gather into one batch: a batch
                    # costs a few round trips whether it carries one event or fifty.
                    await asyncio.sleep(self._gather)

    async def _publish_batch(self) -> tuple[int, bool]:
        """Publish up to batch_size rows; return (published, whether the bus failed).
        Rows are read and marked with plain statements, the marks in one UPDATE: under
        a checkout load the ORM's per-row work cost more than the publishing."""
        async with self._sessions() as session:
            columns = (OutboxRow.id, OutboxRow.type, OutboxRow.data, OutboxRow.occurred_at)
            query = (
                select(*columns, OutboxRow.attempts)
                .where(OutboxRow.published_at.is_(None))
                .order_by(OutboxRow.occurred_at, OutboxRow.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)  # not rendered on SQLite
            )
            rows = (await session.execute(query)).all()
            if session.get_bind().dialect.name == "sqlite":
                await session.commit()  # release the database lock before network I/O
            outcomes = await asyncio.gather(
                *(self._bus.publish(_event(row)) for row in rows), return_exceptions=True
            )
            published: list[str] = []
            failed = False
            for row, outcome in zip(rows, outcomes, strict=True):
                if isinstance(outcome, BaseException):  # the bus failed: keep it, retry later
                    await self._record_failure(session, row, _describe(outcome))
                    failed = True
                    break
                published.append(row.id)
            if published:
                mark = update(OutboxRow).where(OutboxRow.id.in_(published))
                await session.execute(mark.values(published_at=datetime.now(UTC)))
            await session.commit()
            return len(published), failed

    @staticmethod
    async def _record_failure(session: AsyncSession, row, error: str) -> None:
        log.warning(
            "outbox: publishing %s %s failed (attempt %d): %s",
            row.type,
            row.id,
            row.attempts + 1,
            error,
        )
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row.id)
            .values(attempts=OutboxRow.attempts + 1, last_error=error)
        )

    def _after_commit(self, session: Session) -> None:
        """SQLAlchemy hook, called in whichever thread and loop committed: hop to ours."""
        if not committed_new_events(session) or self._loop is None:
            return
        if self._engine is not None and session.bind is not self._engine:
            return
        with contextlib.suppress(RuntimeError):  # our loop is closed: nothing to wake
            self._loop.call_soon_threadsafe(self._wake.set)


def _event(row) -> Event:
    return Event(id=row.id, type=row.type, data=row.data, occurred_at=row.occurred_at)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep up to `seconds`, returning early when `event` is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def _describe(exc: BaseException) -> str:
    """A short, credential-free description for `last_error`."""
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return _CREDENTIALS.sub("://***@", text)[:200]
