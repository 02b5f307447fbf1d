"""Cart items: what a buyer intends to buy, with the price seen when it was added."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, func, literal_column
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class CartItem(Base):
    __tablename__ = "cart_items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[str] = mapped_column(ForeignKey("variants.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    live_session_id: Mapped[str | None] = mapped_column(String(36), default=None)
    price_when_added: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime())


# What makes two adds one line. A plain unique constraint would not do: NULLs are
# distinct in it, so lines outside any session (live_session_id NULL) would never clash.
# The cart's upsert names exactly these expressions as its conflict target.
ONE_LINE_PER_UNIT = (
    CartItem.user_id,
    CartItem.variant_id,
    func.coalesce(CartItem.live_session_id, literal_column("''")),
)
Index("one_line_per_unit", *ONE_LINE_PER_UNIT, unique=True)
