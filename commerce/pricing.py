"""Prices: the regular price of a unit, and the hooks through which live sessions change
what a unit costs (live and flash prices) and how many may be sold (a session's own
allocation). `commerce` cannot import `live`, so `live` plugs its implementation in at
the composition root."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import Product, Variant


def regular_price(product: Product, variant: Variant) -> int:
    return variant.price if variant.price is not None else product.base_price


class LivePrices(Protocol):
    async def price(
        self, session: AsyncSession, live_session_id: str, product_id: str, variant_id: str
    ) -> int | None:
        """The live price of a unit on show in that session now, or None (regular price)."""
        ...


class LiveAllocations(Protocol):
    async def take(
        self,
        session: AsyncSession,
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
    session: AsyncSession,
    live: LivePrices,
    product: Product,
    variant: Variant,
    live_session_id: str | None,
) -> int:
    if live_session_id:
        price = await live.price(session, live_session_id, product.id, variant.id)
        if price is not None:
            return price
    return regular_price(product, variant)
