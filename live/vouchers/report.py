"""A session's vouchers for its replay timeline and its live stats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.orders.models import Order, OrderStatus
from commerce.vouchers.models import Voucher
from live.vouchers.service import drop_data

LOST = (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


async def timeline_entries(
    session: AsyncSession, live_session_id: str
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """(when, "voucher.dropped", the drop) for each voucher dropped in the session."""
    vouchers = await session.scalars(
        select(Voucher).where(Voucher.dropped_in == live_session_id).order_by(Voucher.dropped_at)
    )
    entries = []
    for voucher in vouchers:
        assert voucher.dropped_at is not None
        data = drop_data(voucher, voucher.dropped_at)
        del data["server_time"]
        entries.append((voucher.dropped_at, "voucher.dropped", data))
    return entries


async def stats(session: AsyncSession, live_session_id: str) -> dict[str, int]:
    """Drops, claims and uses of the vouchers dropped in the session; the session's
    orders with a voucher (not cancelled or expired) and the discount they gave."""
    drops, claims, used = (
        await session.execute(
            select(
                func.count(Voucher.id),
                func.coalesce(func.sum(Voucher.claimed), 0),
                func.coalesce(func.sum(Voucher.used), 0),
            ).where(Voucher.dropped_in == live_session_id)
        )
    ).one()
    sales, discount = (
        await session.execute(
            select(func.count(Order.id), func.coalesce(func.sum(Order.discount), 0)).where(
                Order.live_session_id == live_session_id,
                Order.voucher_id.is_not(None),
                Order.status.not_in(LOST),
            )
        )
    ).one()
    return {
        "drops": drops,
        "claims": int(claims),
        "used": int(used),
        "sales_with_vouchers": sales,
        "discount_given": int(discount),
    }
