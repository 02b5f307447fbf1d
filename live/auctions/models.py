"""An auction's row carries its whole decision state (price, leader, end) so one
conditional UPDATE decides each bid; the bids table is the history it leaves."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class AuctionStatus(StrEnum):
    RUNNING = "running"
    ENDED = "ended"
    CANCELLED = "cancelled"


class Ending(StrEnum):
    # A bid in the last N seconds moves the end to N seconds after it.
    ANTI_SNIPING = "anti_sniping"
    # The end never moves.
    SUDDEN_DEATH = "sudden_death"


class Auction(Base):
    __tablename__ = "auctions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    live_session_id: Mapped[str] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE"), index=True
    )
    shop_id: Mapped[str] = mapped_column(String(36))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[str | None] = mapped_column(String(36), default=None)
    starting_price: Mapped[int] = mapped_column(BigInteger)
    min_increment: Mapped[int] = mapped_column(BigInteger)
    reserve_price: Mapped[int | None] = mapped_column(BigInteger, default=None)
    buy_now_price: Mapped[int | None] = mapped_column(BigInteger, default=None)
    ending: Mapped[str] = mapped_column(String(16))
    extend_seconds: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12))
    # The highest accepted bid and who made it; NULL until the first bid.
    current_price: Mapped[int | None] = mapped_column(BigInteger, default=None)
    leader_id: Mapped[str | None] = mapped_column(String(36), default=None)
    bid_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    order_id: Mapped[str | None] = mapped_column(String(36), default=None)
    runner_up_order_id: Mapped[str | None] = mapped_column(String(36), default=None)
    created_by: Mapped[str] = mapped_column(String(36))

    __table_args__ = (
        CheckConstraint("starting_price >= 0 AND min_increment > 0", name="prices"),
        Index("ix_auctions_status_ends_at", "status", "ends_at"),
    )


class AuctionBid(Base):
    """An accepted bid. The unique amount and sequence per auction are a last line of
    defence: the conditional UPDATE already makes amounts strictly increase with it."""

    __tablename__ = "auction_bids"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    auction_id: Mapped[str] = mapped_column(ForeignKey("auctions.id", ondelete="CASCADE"))
    bidder_id: Mapped[str] = mapped_column(String(36))
    # The auction's bid count after this bid: the order the database decided them in.
    sequence: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())  # the auction's end after it

    __table_args__ = (
        UniqueConstraint("auction_id", "sequence"),
        UniqueConstraint("auction_id", "amount"),
    )
