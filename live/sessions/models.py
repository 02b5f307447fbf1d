"""Live sessions, the products on show in them, the stretches each was pinned, and their
flash sales."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class LiveStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class LiveSession(Base):
    __tablename__ = "live_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id"), index=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12))
    scheduled_at: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    # Only a hash of the stream key is kept; the key itself is shown once to the owner.
    stream_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pinned_product_id: Mapped[str | None] = mapped_column(String(36), default=None)
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Refreshed every few seconds by whichever process holds the session's RTMP
    # publisher; a session left live by a process that died is ended from this.
    publisher_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    __table_args__ = (Index("ix_live_sessions_status", "status", "scheduled_at"),)


class LiveProduct(Base):
    """A product on show in a session, with an optional live price and stock allocation."""

    __tablename__ = "live_products"

    live_session_id: Mapped[str] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), primary_key=True)
    live_price: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Units set aside for this stream; None = the product's own stock, unlimited.
    live_stock: Mapped[int | None] = mapped_column(Integer, default=None)
    live_sold: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        CheckConstraint("live_price IS NULL OR live_price >= 0", name="price"),
        CheckConstraint("live_stock IS NULL OR live_sold <= live_stock", name="allocation"),
    )


class LivePin(Base):
    """One stretch of time a product spent pinned; `unpinned_at` is NULL while it is."""

    __tablename__ = "live_pins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    live_session_id: Mapped[str] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    pinned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    unpinned_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    __table_args__ = (Index("ix_live_pins_session_pinned", "live_session_id", "pinned_at"),)


class FlashSale(Base):
    """A limited quantity at a flash price for a short window; `sold` only grows through
    a conditional UPDATE, so it never passes `quantity`."""

    __tablename__ = "flash_sales"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    live_session_id: Mapped[str] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[str | None] = mapped_column(ForeignKey("variants.id"), default=None)
    flash_price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    per_buyer_limit: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    # The last phase announced to viewers (scheduled, started, ended): each phase's event
    # is emitted once, by whichever process first moves this forward.
    announced: Mapped[str] = mapped_column(String(12), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("sold >= 0 AND sold <= quantity", name="sold_within_quantity"),
        CheckConstraint("per_buyer_limit >= 1", name="limit_positive"),
    )


class FlashClaim(Base):
    """How many units one buyer took from one flash sale (the per-buyer limit's counter)."""

    __tablename__ = "flash_claims"

    flash_sale_id: Mapped[str] = mapped_column(
        ForeignKey("flash_sales.id", ondelete="CASCADE"), primary_key=True
    )
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class LiveAllocation(Base):
    """Units one order took from a session's showcase (and from a flash sale, when it was
    a claim), one row per (order, product, session): one order may buy a product from
    two sessions of its shop. They go back once, when the order is cancelled or expires:
    `returned_at` is set by a conditional UPDATE, so a duplicated event cannot return
    them twice."""

    __tablename__ = "live_allocations"

    order_id: Mapped[str] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), primary_key=True)
    live_session_id: Mapped[str] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    buyer_id: Mapped[str] = mapped_column(String(36))
    quantity: Mapped[int] = mapped_column(Integer)
    flash_sale_id: Mapped[str | None] = mapped_column(
        ForeignKey("flash_sales.id", ondelete="SET NULL"), default=None
    )
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)
