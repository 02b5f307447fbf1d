"""Bank-transfer payments and every Sepay webhook as received."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime

SEPAY_ID_DIGITS = 64


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PARTIAL = "partial"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Payment(Base):
    """What a buyer owes for one bank-transfer order, and the code the transfer must carry.

    One payment per order keeps partial, late and cancelled cases one-to-one.
    """

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_due: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(12))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class WebhookOutcome(StrEnum):
    PAID = "paid"
    PARTIAL = "partial"
    OVERPAID = "overpaid"
    LATE = "late"
    UNMATCHED = "unmatched"
    OUTGOING = "outgoing"


class SepayTransaction(Base):
    """Every accepted Sepay webhook, verbatim, with what we did about it (audit trail)."""

    __tablename__ = "sepay_transactions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Sepay's id in decimal: Sepay promises no range, and a bigint would refuse (and so
    # drop) a transfer whose id passed 2^63 - 1.
    sepay_id: Mapped[str] = mapped_column(String(SEPAY_ID_DIGITS), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    transfer_type: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[str] = mapped_column(Text, default="")
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"), default=None)
    outcome: Mapped[str] = mapped_column(String(12))
    refund_due: Mapped[int] = mapped_column(BigInteger, default=0)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    note: Mapped[str] = mapped_column(Text, default="")
