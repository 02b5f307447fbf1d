"""Prices: the regular price of a unit, and the hooks through which live sessions change
what a unit costs (live and flash prices) and how many may be sold (a session's own
allocation). `commerce` cannot import `live`, so `live` plugs its implementation in at
the composition root. The hooks run their statements through `Statements`: in the
general checkout's SQLAlchemy transaction or on the express checkout's asyncpg
connection."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from commerce.catalog.models import Product, Variant
from storage.sql.statements import Statements
from storage.web import Problem

LIVE_STOCK_EXHAUSTED = "live-stock-exhausted"


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

    async def left(self, db: Statements, live_session_id: str, product_id: str) -> int | None:
        """Units the session's allocation of the product can still sell, or None when
        nothing limits them (not on show, no allocation, or the session ended)."""
        ...

    def holding(
        self, buyer_id: str, wanted: Mapping[tuple[str, str], int]
    ) -> AbstractAsyncContextManager[None]:
        """Around a checkout: the units it buys from sessions (by session and product)
        held first, so a sold-out allocation is refused (`live_stock_exhausted`) before
        the database; kept when the block ends normally, given back when it raises."""
        ...


def live_stock_exhausted(
    live_session_id: str,
    product_id: str,
    requested: int,
    available: int,
    name: str | None = None,
) -> Problem:
    what = f"'{name}'" if name else "this product"
    return Problem(
        409,
        LIVE_STOCK_EXHAUSTED,
        f"Not enough units of {what} are set aside for this live session:"
        f" {available} can be bought.",
        product_id=product_id,
        live_session_id=live_session_id,
        requested=requested,
        available=available,
    )


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
