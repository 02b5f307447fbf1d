"""The session's timeline: pins, flash sales, auctions, giveaways and voucher drops in
time order, for replays.

Flash sales come from `flash_sales` itself: a sale starts at `starts_at` and ends at
`ends_at`, or when it was cancelled (ending the session cancels it). One cancelled
before it started never ran and is left out, as is anything still in the future.
"""

from __future__ import annotations

from datetime import datetime
from typing import get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from live.analytics.schemas import TimelineEntryOut, TimelineKind
from live.auctions import reports as auctions
from live.giveaways import public as giveaways
from live.sessions.models import FlashSale, LivePin
from live.vouchers import report as vouchers

KIND_ORDER = get_args(TimelineKind)
LIVE_TOOLS = (auctions, giveaways, vouchers)  # each: timeline_entries(session, id) and stats


async def timeline(
    session: AsyncSession, live_session_id: str, now: datetime
) -> list[TimelineEntryOut]:
    entries: list[TimelineEntryOut] = []
    pins = await session.scalars(select(LivePin).where(LivePin.live_session_id == live_session_id))
    for pin in pins:
        entries.append(TimelineEntryOut(at=pin.pinned_at, kind="pinned", product_id=pin.product_id))
        if pin.unpinned_at is not None:
            entries.append(
                TimelineEntryOut(at=pin.unpinned_at, kind="unpinned", product_id=pin.product_id)
            )
    sales = await session.scalars(
        select(FlashSale).where(FlashSale.live_session_id == live_session_id)
    )
    for sale in sales:
        ended = min(sale.ends_at, sale.cancelled_at or sale.ends_at)
        if ended <= sale.starts_at:
            continue
        for at, kind in ((sale.starts_at, "flash_started"), (ended, "flash_ended")):
            entries.append(
                TimelineEntryOut(
                    at=at, kind=kind, product_id=sale.product_id, flash_sale_id=sale.id
                )
            )
    for tool in LIVE_TOOLS:
        for at, kind, data in await tool.timeline_entries(session, live_session_id):
            entries.append(
                TimelineEntryOut(
                    at=at,
                    kind=kind.replace(".", "_"),
                    product_id=data.get("product_id"),
                    detail=data,
                )
            )
    return sorted(
        (entry for entry in entries if entry.at <= now),
        key=lambda entry: (entry.at, KIND_ORDER.index(entry.kind), entry.product_id or ""),
    )
