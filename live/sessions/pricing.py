"""Live prices for commerce: what a product on show costs while its session is live."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from live.sessions.models import LiveProduct, LiveSession, LiveStatus


class LiveSessionPrices:
    """Implements `commerce.pricing.LivePrices`; plugged in by the composition root."""

    async def price(
        self, session: AsyncSession, live_session_id: str, product_id: str, variant_id: str
    ) -> int | None:
        return await session.scalar(
            select(LiveProduct.live_price)
            .join(LiveSession, LiveSession.id == LiveProduct.live_session_id)
            .where(
                LiveProduct.live_session_id == live_session_id,
                LiveProduct.product_id == product_id,
                LiveSession.status == LiveStatus.LIVE,
            )
        )
