"""Vouchers and the buyers' claims of them.

`claimed` and `used` are counters moved only by conditional UPDATEs (`claimed < total`,
a claim's `used_at IS NULL`), so no race hands out more than `total` or spends a claim
twice. The drop columns say when a seller put the voucher on air and until when it
may be claimed (`live.vouchers`); a voucher is dropped at most once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class VoucherKind(StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


class Voucher(Base):
    __tablename__ = "vouchers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[int] = mapped_column(BigInteger)  # percent (1-100) or VND
    min_order: Mapped[int] = mapped_column(BigInteger, default=0)
    max_discount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    total: Mapped[int] = mapped_column(Integer)
    per_buyer_limit: Mapped[int] = mapped_column(Integer, default=1)
    live_session_id: Mapped[str | None] = mapped_column(String(36), default=None)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    dropped_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    dropped_in: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    claims_close_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("claimed >= 0 AND claimed <= total", name="claimed_within_total"),
        CheckConstraint("used >= 0 AND used <= claimed", name="used_within_claimed"),
    )


class VoucherClaim(Base):
    """One voucher a buyer holds. Spent by an order (`order_id`, `used_at`); given back
    (`returned_at`, `used_at` cleared) when that order is cancelled or expires."""

    __tablename__ = "voucher_claims"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    voucher_id: Mapped[str] = mapped_column(ForeignKey("vouchers.id"))
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    order_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    __table_args__ = (
        Index("ix_voucher_claims_voucher_buyer", "voucher_id", "buyer_id"),
        Index("ix_voucher_claims_buyer", "buyer_id", "claimed_at"),
    )
