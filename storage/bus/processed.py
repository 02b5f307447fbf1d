"""Which events each consumer has handled: makes consumers idempotent on event id."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime
from storage.sql.driver_pool import DriverPool


class ProcessedEventRow(Base):
    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SqlProcessedStore:
    """Remembers (consumer, event id) pairs in SQL so a redelivered event is not handled twice.

    Lives in the relational database rather than the broker so the record
    survives broker restarts and is shared by every replica of a consumer.

    Every event handled costs a lookup and a record. With a `DriverPool` (PostgreSQL)
    both are single statements on asyncpg, the record an insert that ignores a
    duplicate and commits on its own: through SQLAlchemy's sessions they were four
    round trips and a good share of a checkout's CPU (each checkout announces two
    events).
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        driver_pool: DriverPool | None = None,
    ) -> None:
        self._sessions = session_factory
        self._pool = driver_pool

    async def seen(self, consumer: str, event_id: str) -> bool:
        if self._pool is not None:
            async with self._pool.acquire() as connection:
                return await connection.fetchval(_SEEN, consumer, event_id) is not None
        async with self._sessions() as session:
            return await session.get(ProcessedEventRow, (consumer, event_id)) is not None

    async def mark(self, consumer: str, event_id: str) -> None:
        """Record a handled event; a concurrent duplicate already recorded it, which is fine."""
        now = datetime.now(UTC)
        if self._pool is not None:
            async with self._pool.acquire() as connection:
                await connection.execute(_MARK, consumer, event_id, now)
            return
        async with self._sessions() as session:
            session.add(ProcessedEventRow(consumer=consumer, event_id=event_id, processed_at=now))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()


_SEEN = "SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2"
_MARK = (
    "INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING"
)
