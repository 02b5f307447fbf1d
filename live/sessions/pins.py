"""Writing the pin timeline, inside the transaction that changes the pin.

Called by `LiveSessionService` with its open transaction, so the timeline and
`live_sessions.pinned_product_id` commit together or not at all; that is why it lives
with the sessions, and `live.analytics` only reads it. On PostgreSQL the pin
change first updates the session's row, which holds its lock until commit: two
concurrent pins queue there, and the second then sees the first's interval.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from live.sessions.models import LivePin
from storage.ids import new_id


async def record_pin(
    session: AsyncSession, live_session_id: str, product_id: str | None, now: datetime
) -> None:
    """Close the open interval and open one for `product_id` (None = unpin). Pinning the
    product that is already pinned changes nothing: it is still the same stretch."""
    pinned = await session.scalar(
        select(LivePin.product_id).where(
            LivePin.live_session_id == live_session_id, LivePin.unpinned_at.is_(None)
        )
    )
    if pinned is not None and pinned == product_id:
        return
    await close_pin(session, live_session_id, now)
    if product_id is not None:
        session.add(
            LivePin(
                id=new_id(), live_session_id=live_session_id, product_id=product_id, pinned_at=now
            )
        )


async def close_pin(
    session: AsyncSession, live_session_id: str, now: datetime, product_id: str | None = None
) -> None:
    """End the open interval (only if it is `product_id`'s, when given): on unpin, when
    the session ends and when the pinned product is taken off show."""
    query = update(LivePin).where(
        LivePin.live_session_id == live_session_id, LivePin.unpinned_at.is_(None)
    )
    if product_id is not None:
        query = query.where(LivePin.product_id == product_id)
    await session.execute(query.values(unpinned_at=now))
