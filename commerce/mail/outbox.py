"""The mail outbox: every mail is a row first, written in the caller's transaction, and
a worker sends it later. An SMTP outage then loses nothing and delays nothing but mail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from commerce.mail.templates import Rendered
from storage.ids import new_id
from storage.sql import Base, UtcDateTime


class MailRow(Base):
    __tablename__ = "mail_outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (Index("ix_mail_outbox_pending", "sent_at", "next_attempt_at"),)


def queue_mail(session: AsyncSession, recipient: str, mail: Rendered, now: datetime) -> MailRow:
    """Add a mail to the caller's transaction; it is sent once that commits."""
    row = MailRow(
        id=new_id(),
        recipient=recipient,
        subject=mail.subject,
        text_body=mail.text,
        html_body=mail.html,
        created_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    session.add(row)
    return row
