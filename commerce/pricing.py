"""Prices: the regular price of a unit, and the hook through which live sessions
(flash and live prices) change it. `commerce` cannot import `live`, so `live`
plugs its implementation in at the composition root."""

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
