"""Delivery channels beyond in-app (email, push), plugged in by the composition root.

Commerce only knows the `Channel` protocol: the code that sends mail or web push
lives with those features, and a channel that fails or hangs never holds up the
in-app notification, which is stored and pushed before any channel runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Recipient:
    """Who a notification is for, with what a channel needs to reach them."""

    id: str
    email: str
    display_name: str


@dataclass(frozen=True)
class Notification:
    """One message for one user; `to_document` is its form in the document store."""

    id: str
    user_id: str
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: str  # ISO 8601 UTC, as the document store keeps times
    read_at: str | None = None

    def to_document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "kind": self.kind,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "created_at": self.created_at,
            "read_at": self.read_at,
        }


class Channel(Protocol):
    async def deliver(self, user: Recipient, notification: Notification) -> None:
        """Send one notification; raise to have it retried later."""
        ...


CHANNEL_NAMES = ("email", "push")


class ChannelRegistry:
    """The channels this process can deliver through, by preference name."""

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}

    def register(self, name: str, channel: Channel) -> None:
        if name not in CHANNEL_NAMES:
            raise ValueError(f"unknown channel {name!r}: one of {', '.join(CHANNEL_NAMES)}")
        self._channels[name] = channel

    def get(self, name: str) -> Channel | None:
        return self._channels.get(name)
