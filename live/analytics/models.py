"""What analytics keeps in the database, so every server process sees the same visits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class LiveVisit(Base):
    """One socket watching one session, from `session:join` to leave or disconnect.

    A viewer (a user, or a guest socket) with several tabs has several visits; the stats
    merge them per viewer. `left_at` stays NULL while the socket watches, and for ever
    when its process died without closing it (the stats then end it with the session).
    """

    __tablename__ = "live_visits"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    live_session_id: Mapped[str] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    viewer_key: Mapped[str] = mapped_column(String(64))
    signed_in: Mapped[bool] = mapped_column(Boolean)
    socket_id: Mapped[str] = mapped_column(String(64))
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    __table_args__ = (Index("ix_live_visits_session_socket", "live_session_id", "socket_id"),)
