"""Buyers following shops: who hears when a shop goes live."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class ShopFollow(Base):
    __tablename__ = "shop_follows"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    shop_id: Mapped[str] = mapped_column(
        ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
