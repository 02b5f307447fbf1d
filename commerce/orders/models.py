"""Orders, their lines, their append-only history and the stock they hold."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"


class PaymentMethod(StrEnum):
    BANK_TRANSFER = "bank_transfer"
    COD = "cod"


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id"))
    status: Mapped[str] = mapped_column(String(20))
    payment_method: Mapped[str] = mapped_column(String(20))
    live_session_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    subtotal: Mapped[int] = mapped_column(BigInteger)
    shipping_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    # The voucher that gave the discount (commerce.vouchers), kept as it was then.
    voucher_claim_id: Mapped[str | None] = mapped_column(String(36), default=None)
    voucher_id: Mapped[str | None] = mapped_column(String(36), default=None)
    voucher_code: Mapped[str | None] = mapped_column(String(40), default=None)
    total: Mapped[int] = mapped_column(BigInteger)
    shipping_address: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    payment_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("total >= 0", name="total_not_negative"),
        Index("ix_orders_shop_created", "shop_id", "created_at"),
        Index("ix_orders_deadline", "status", "payment_deadline"),
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[str] = mapped_column(ForeignKey("variants.id"))
    name: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    line_total: Mapped[int] = mapped_column(BigInteger)
    # The live session the line was bought in, if any: an order's lines may come from
    # several (then `Order.live_session_id` is None), and a session lists its orders by it.
    live_session_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)

    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)


class OrderEvent(Base):
    """Append-only: one row per status change, with who made it and why."""

    __tablename__ = "order_history"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(36))
    actor: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReservationStatus(StrEnum):
    HELD = "held"  # counted in variants.reserved
    COMMITTED = "committed"  # sold: taken off variants.on_hand
    RELEASED = "released"  # never sold: back to available
    RESTOCKED = "restocked"  # sold, then cancelled: back on hand


class Reservation(Base):
    """Units of one variant held for one order. Leaves `held` exactly once."""

    __tablename__ = "reservations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[str] = mapped_column(ForeignKey("variants.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
