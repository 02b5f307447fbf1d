"""Prices: the regular price of a unit, and the hooks through which live sessions change
what a unit costs (live and flash prices) and how many may be sold (a session's own
allocation). `commerce` cannot import `live`, so `live` plugs its implementation in at
the composition root. The hooks run their statements through `Statements`: in the
general checkout's SQLAlchemy transaction or on the express checkout's asyncpg
connection."""

from __future__ import annotations

from typing import Protocol

from commerce.catalog.models import Product, Variant
from storage.sql.statements import Statements


def regular_price(product: Product, variant: Variant) -> int:
    return variant.price if variant.price is not None else product.base_price


class LivePrices(Protocol):
    async def price(
        self, db: Statements, live_session_id: str, product_id: str, variant_id: str
    ) -> int | None:
        """The live price of a unit on show in that session now, or None (regular price)."""
        ...


class LiveAllocations(Protocol):
    async def take(
        self,
        db: Statements,
        order_id: str,
        buyer_id: str,
        live_session_id: str,
        product_id: str,
        quantity: int,
    ) -> bool:
        """Count units an order buys from a session against the session's allocation, in
        the checkout's transaction; False when the allocation cannot cover them."""
        ...


async def current_price(
    db: Statements,
    live: LivePrices,
    product: Product,
    variant: Variant,
    live_session_id: str | None,
) -> int:
    if live_session_id:
        price = await live.price(db, live_session_id, product.id, variant.id)
        if price is not None:
            return price
    return regular_price(product, variant)
