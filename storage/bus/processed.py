"""Which events each consumer has handled: makes consumers idempotent on event id."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class ProcessedEventRow(Base):
    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SqlProcessedStore:
    """Remembers (consumer, event id) pairs in SQL so a redelivered event is not handled twice.

    Lives in the relational database rather than the broker so the record
    survives broker restarts and is shared by every replica of a consumer.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def seen(self, consumer: str, event_id: str) -> bool:
        async with self._sessions() as session:
            return await session.get(ProcessedEventRow, (consumer, event_id)) is not None

    async def mark(self, consumer: str, event_id: str) -> None:
        """Record a handled event; a concurrent duplicate already recorded it, which is fine."""
        row = ProcessedEventRow(
            consumer=consumer, event_id=event_id, processed_at=datetime.now(UTC)
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
