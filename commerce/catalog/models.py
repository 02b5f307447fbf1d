"""Products and their sellable units (variants), each unit with its own stock."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class ProductStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    images: Mapped[list[str]] = mapped_column(JSON, default=list)
    category: Mapped[str] = mapped_column(String(80), default="")
    base_price: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("base_price >= 0", name="base_price_not_negative"),
        Index("ix_products_shop_status", "shop_id", "status", "id"),
        Index("ix_products_category", "category", "id"),
    )


class Variant(Base):
    """One sellable unit. A product without options has exactly one default variant.

    `reserved` counts units held by unpaid orders; `on_hand - reserved` is what can
    still be sold. Both only change through single conditional UPDATEs.
    """

    __tablename__ = "variants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    sku: Mapped[str | None] = mapped_column(String(64), default=None)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    price: Mapped[int | None] = mapped_column(BigInteger, default=None)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    is_default: Mapped[bool] = mapped_column(default=False)
    archived: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("on_hand >= reserved", name="stock_covers_reservations"),
        CheckConstraint("price IS NULL OR price >= 0", name="price_not_negative"),
    )
