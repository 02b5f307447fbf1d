"""Live prices for commerce: what a product on show costs while its session is live."""

from __future__ import annotations

from sqlalchemy import text

from live.sessions.models import LiveStatus
from storage.sql.statements import Statements

_LIVE_PRICE = text(
    "SELECT lp.live_price FROM live_products AS lp"
    " JOIN live_sessions AS s ON s.id = lp.live_session_id"
    " WHERE lp.live_session_id = :live_session_id AND lp.product_id = :product_id"
    " AND s.status = :live"
)


class LiveSessionPrices:
    """Implements `commerce.pricing.LivePrices`; plugged in by the composition root."""

    async def price(
        self, db: Statements, live_session_id: str, product_id: str, variant_id: str
    ) -> int | None:
        return await db.value(
            _LIVE_PRICE,
            {
                "live_session_id": live_session_id,
                "product_id": product_id,
                "live": LiveStatus.LIVE.value,
            },
        )
