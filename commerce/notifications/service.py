"""Store in-app notifications, push them to their users, then hand them to other channels.

The order matters: the document is stored and pushed before any other channel sees
it, and other channels run in background tasks, so a slow mail server or push service
never delays the in-app notification. Stores go out as one insert per chunk of a
thousand: a shop going live to ten thousand followers is ten statements, not ten
thousand awaited writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from commerce.notifications.channels import (
    CHANNEL_NAMES,
    Channel,
    ChannelRegistry,
    Notification,
    Recipient,
)
from commerce.notifications.kinds import Choice
from commerce.notifications.retention import NotificationRetention
from storage.documents.port import Document, DocumentStore
from storage.web import Problem

log = logging.getLogger("streamcart.notifications")

COLLECTION = "notifications"
STORE_CHUNK = 1000  # documents per insert: 4,000 bind parameters, under every limit
MAX_CHANNEL_TASKS = 1000  # background deliveries in flight; beyond this they wait
CLOSE_SECONDS = 5.0
NOT_FOUND = Problem(404, "notification-not-found", "There is no notification with this id.")

Listener = Callable[[Sequence[Notification]], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """One notification on its way to one user, with the channels that user chose."""

    recipient: Recipient
    choice: Choice
    notification: Notification


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class NotificationService:
    def __init__(self, documents: DocumentStore, channels: ChannelRegistry) -> None:
        self._documents = documents
        self.channels = channels
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._channel_slots = asyncio.Semaphore(MAX_CHANNEL_TASKS)

    def on_stored(self, listener: Listener) -> None:
        """Called with every batch of newly stored in-app notifications (the composition
        root pushes them to the users' sockets)."""
        self._listeners.append(listener)

    async def deliver(self, deliveries: Sequence[Delivery]) -> None:
        """In-app first (stored, then pushed), then the other channels in the background.
        A notification stored by an earlier attempt at the same event is not stored,
        pushed or sent again, so a retried event changes nothing."""
        for start in range(0, len(deliveries), STORE_CHUNK):
            chunk = deliveries[start : start + STORE_CHUNK]
            stored = set(
                await self._documents.insert_many(COLLECTION, [_document(d) for d in chunk])
            )
            fresh = [d for d in chunk if d.notification.id in stored]
            pushed = [d.notification for d in fresh if d.choice.in_app]
            for listener in self._listeners:
                await listener(pushed)
            for delivery in fresh:
                self._send_elsewhere(delivery)

    def _send_elsewhere(self, delivery: Delivery) -> None:
        for name in CHANNEL_NAMES:
            channel = self.channels.get(name)
            if channel is not None and delivery.choice.wants(name):
                task = asyncio.create_task(self._send(name, channel, delivery))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send(self, name: str, channel: Channel, delivery: Delivery) -> None:
        async with self._channel_slots:
            try:
                await channel.deliver(delivery.recipient, delivery.notification)
            except Exception:  # the channel keeps its own retries; in-app is already done
                log.exception("notification channel %s failed", name)

    async def close(self) -> None:
        """Give background deliveries a moment to hand their work to the channels, then
        cancel what hangs: a stuck mail server must not stop the process stopping."""
        if not self._tasks:
            return
        _, hanging = await asyncio.wait(self._tasks, timeout=CLOSE_SECONDS)
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)

    async def page(
        self, user_id: str, limit: int, after: str | None
    ) -> tuple[list[Document], str | None]:
        """Newest first; `after` is the id the previous page ended with (ids are UUIDv7,
        so id order is time order), read from the index however deep the page."""
        docs = await self._documents.find(
            COLLECTION,
            _visible(user_id),
            sort="id",
            descending=True,
            limit=limit + 1,
            after_id=after,
        )
        items = docs[:limit]
        return items, items[-1]["id"] if len(docs) > limit else None

    async def unread_count(self, user_id: str) -> int:
        return await self._documents.count(COLLECTION, {**_visible(user_id), "read_at": None})

    async def mark_read(self, user_id: str, notification_id: str) -> Document:
        doc = await self._documents.get(COLLECTION, notification_id)
        if doc is None or doc["user_id"] != user_id or doc.get("hidden"):
            raise NOT_FOUND
        if doc["read_at"] is None:
            doc["read_at"] = now_iso()
            await self._documents.update(COLLECTION, notification_id, {"read_at": doc["read_at"]})
        return doc

    async def mark_all_read(self, user_id: str) -> int:
        """One statement however many are unread; returns how many it marked."""
        unread = {**_visible(user_id), "read_at": None}
        return await self._documents.update_many(COLLECTION, unread, {"read_at": now_iso()})

    def retention(self, days: int) -> NotificationRetention:
        """The job deleting notifications stored more than `days` ago (0: none); the
        composition root starts it in every process."""
        return NotificationRetention(self._documents, COLLECTION, days)


def _document(delivery: Delivery) -> Document:
    """One the user does not want in-app is still recorded (hidden, read at once) so a
    retried event knows it was handled."""
    notification = delivery.notification
    doc = notification.to_document()
    if not delivery.choice.in_app:
        doc |= {"read_at": notification.created_at, "hidden": True}
    return doc


def _visible(user_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "hidden": None}
