"""Browsers' Web Push subscriptions: where to post a user's notifications, and the keys
that encrypt them for that browser alone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class PushSubscription(Base):
    """One browser's subscription; the endpoint identifies it (a browser that subscribes
    again after another user signed in there hands the same endpoint to the new user)."""

    __tablename__ = "push_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1024), unique=True)
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
