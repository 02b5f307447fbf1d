"""Giveaways, who entered them and who won.

The seed is stored from the start but published only once drawn; until then only its
SHA-256 (`seed_commitment`) is shown, so the seller cannot pick the seed after seeing
the entries, and nobody else can predict the winners.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class GiveawayStatus(StrEnum):
    OPEN = "open"
    DRAWN = "drawn"
    CANCELLED = "cancelled"


class EntryMode(StrEnum):
    BUTTON = "button"  # anyone signed in presses "enter"
    KEYWORD = "keyword"  # a chat message containing the keyword enters its sender
    FOLLOWERS = "followers"  # the button, for followers of the shop only


class Giveaway(Base):
    __tablename__ = "giveaways"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    live_session_id: Mapped[str] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE"), index=True
    )
    shop_id: Mapped[str] = mapped_column(String(36))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[str] = mapped_column(ForeignKey("variants.id"))
    winners_count: Mapped[int] = mapped_column(Integer)
    entry_mode: Mapped[str] = mapped_column(String(12))
    keyword: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(12))
    seed_commitment: Mapped[str] = mapped_column(String(64))
    seed: Mapped[str] = mapped_column(String(64))  # hex; published once drawn
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closes_at: Mapped[datetime] = mapped_column(UtcDateTime())
    drawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    created_by: Mapped[str] = mapped_column(String(36))

    __table_args__ = (
        CheckConstraint("winners_count >= 1", name="winners_positive"),
        Index("ix_giveaways_due", "status", "closes_at"),
    )


class GiveawayEntry(Base):
    """One user's entry: the primary key makes a second entry count once."""

    __tablename__ = "giveaway_entries"

    giveaway_id: Mapped[str] = mapped_column(
        ForeignKey("giveaways.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime())


class GiveawayWinner(Base):
    """A winner, their rank in the draw and the zero-price order holding their prize
    (None when the stock ran out before the draw); `claimed_at` once they gave an
    address."""

    __tablename__ = "giveaway_winners"

    giveaway_id: Mapped[str] = mapped_column(
        ForeignKey("giveaways.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[str | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), default=None
    )
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
