"""Request and response bodies of the notifications API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from commerce.notifications.kinds import KINDS
from storage.web import Input
from storage.web.pagination import Page

Kind = Literal[KINDS]  # type: ignore[valid-type]


class NotificationOut(BaseModel):
    id: str
    kind: str = Field(description="What happened; see docs/notifications.md for the list.")
    title: str
    body: str
    data: dict[str, Any] = Field(description="Ids to link to: order, shop, live session.")
    created_at: str = Field(description="ISO 8601 UTC.")
    read_at: str | None


class NotificationPage(Page[NotificationOut]):
    unread_count: int = Field(description="Unread notifications in all pages.")


class ChoiceIO(Input):
    in_app: bool
    email: bool
    push: bool


class PreferencesIO(Input):
    preferences: dict[Kind, ChoiceIO] = Field(
        description="Channels per kind. On PUT, kinds left out keep their current choice."
    )
