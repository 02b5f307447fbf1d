"""What auctions add to a session's replay timeline and live stats, for the analytics
that gather them (they call these; auctions know nothing of them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.accounts.models import User
from live.auctions.models import Auction, AuctionStatus
from live.auctions.views import reserve_met


async def timeline_entries(
    session: AsyncSession, live_session_id: str
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """(at, kind, data): each auction's start, and its end with the winner and amount."""
    rows = await session.execute(
        select(Auction, User.display_name)
        .outerjoin(User, User.id == Auction.leader_id)
        .where(Auction.live_session_id == live_session_id)
        .order_by(Auction.started_at)
    )
    entries: list[tuple[datetime, str, dict[str, Any]]] = []
    for auction, leader_name in rows:
        about = {"auction_id": auction.id, "product_id": auction.product_id}
        entries.append(
            (
                auction.started_at,
                "auction.started",
                {**about, "starting_price": auction.starting_price},
            )
        )
        if auction.ended_at is None:
            continue
        won = auction.status == AuctionStatus.ENDED and reserve_met(auction)
        ended = {
            **about,
            "status": auction.status,
            "winner_name": leader_name if won else None,
            "amount": auction.current_price if won else None,
            "bids": auction.bid_count,
        }
        entries.append((auction.ended_at, "auction.ended", ended))
    return sorted(entries, key=lambda entry: entry[0])


async def stats(session: AsyncSession, live_session_id: str) -> dict[str, int]:
    """Auctions run, bids accepted, auctions sold (an order placed for the winner) and
    the revenue they would bring at the winning prices."""
    auctions, bids = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Auction.bid_count), 0)).where(
                Auction.live_session_id == live_session_id
            )
        )
    ).one()
    sold, revenue = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Auction.current_price), 0)).where(
                Auction.live_session_id == live_session_id, Auction.order_id.is_not(None)
            )
        )
    ).one()
    return {"auctions": auctions, "bids": int(bids), "sold": sold, "revenue": int(revenue)}
