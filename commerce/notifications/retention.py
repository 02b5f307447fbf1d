"""Notifications are kept for a while, not forever: a follower of many shops collects
thousands a month, and every one of them weighs on the shared documents table.

Every process runs the job (no leader to elect): each round deletes at most
`BATCHES` batches of the oldest notifications through the insertion-time index, so a
round with nothing to delete is one index probe, and processes racing on one batch
only delete it once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.documents.port import DocumentStore
from storage.documents.rules import MAX_LIMIT
from storage.periodic import Periodic

INTERVAL = 60.0  # seconds between rounds
BATCHES = 10  # per round: up to 14 million deletions a day per process


class NotificationRetention:
    def __init__(self, documents: DocumentStore, collection: str, days: int) -> None:
        if days < 0:  # a cutoff in the future would delete every notification
            raise ValueError(f"notification retention must be 0 (forever) or more days, not {days}")
        self._documents = documents
        self._collection = collection
        self._keep = timedelta(days=days)
        self._job = Periodic("notification-retention", INTERVAL, self.sweep) if days else None

    async def start(self) -> None:
        """The inbox's indexes are built first, so no query scans the collection."""
        await self._documents.prepare(self._collection)
        if self._job is not None:
            await self._job.start()

    async def stop(self) -> None:
        if self._job is not None:
            await self._job.stop()

    async def sweep(self) -> int:
        """One round; returns how many notifications it deleted."""
        cutoff = datetime.now(UTC) - self._keep
        deleted = 0
        for _ in range(BATCHES):
            batch = await self._documents.delete_many(
                self._collection, stored_before=cutoff, limit=MAX_LIMIT
            )
            deleted += batch
            if batch < MAX_LIMIT:
                break
        return deleted
