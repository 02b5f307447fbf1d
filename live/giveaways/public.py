"""What the world sees of giveaways: events, the public record anyone can recompute the
draw from, and the figures the replay timeline and live stats are built from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from live.giveaways import draw
from live.giveaways.models import Giveaway, GiveawayEntry, GiveawayStatus, GiveawayWinner


def giveaway_data(giveaway: Giveaway, entries_count: int | None = None) -> dict[str, Any]:
    """The giveaway without its entries; the seed only once drawn."""
    data = {
        "id": giveaway.id,
        "live_session_id": giveaway.live_session_id,
        "shop_id": giveaway.shop_id,
        "product_id": giveaway.product_id,
        "variant_id": giveaway.variant_id,
        "winners_count": giveaway.winners_count,
        "entry_mode": giveaway.entry_mode,
        "keyword": giveaway.keyword,
        "status": giveaway.status,
        "seed_commitment": giveaway.seed_commitment,
        "seed": giveaway.seed if giveaway.status == GiveawayStatus.DRAWN else None,
        "algorithm": draw.ALGORITHM,
        "starts_at": giveaway.starts_at.isoformat(),
        "closes_at": giveaway.closes_at.isoformat(),
        "drawn_at": giveaway.drawn_at.isoformat() if giveaway.drawn_at else None,
        "server_time": datetime.now(UTC).isoformat(),
    }
    if entries_count is not None:
        data["entries_count"] = entries_count
    return data


def drawn_data(giveaway: Giveaway, names: dict[str, str], winners: list[str]) -> dict[str, Any]:
    """The `giveaway.drawn` event: the revealed seed and who won."""
    return {
        **giveaway_data(giveaway, entries_count=len(names)),
        "winners": [
            {"user_id": user_id, "display_name": names[user_id], "rank": rank}
            for rank, user_id in enumerate(winners, start=1)
        ],
    }


async def record(session: AsyncSession, giveaway: Giveaway) -> dict[str, Any]:
    """The public record: every entry (by user id), the commitment, and once drawn the
    seed and the winners, with where each winner's prize stands."""
    entries = (
        await session.execute(
            select(GiveawayEntry.user_id, GiveawayEntry.display_name)
            .where(GiveawayEntry.giveaway_id == giveaway.id)
            .order_by(GiveawayEntry.user_id)
        )
    ).all()
    names = dict(entries)
    winners = (
        await session.scalars(
            select(GiveawayWinner)
            .where(GiveawayWinner.giveaway_id == giveaway.id)
            .order_by(GiveawayWinner.rank)
        )
    ).all()
    return {
        **giveaway_data(giveaway, entries_count=len(entries)),
        "entries": [{"user_id": u, "display_name": n} for u, n in entries],
        "winners": [
            {
                "user_id": w.user_id,
                "display_name": names[w.user_id],
                "rank": w.rank,
                "order_id": w.order_id,
                "prize": _prize(w),
            }
            for w in winners
        ],
    }


def _prize(winner: GiveawayWinner) -> str:
    if winner.order_id is None:
        return "unavailable"
    return "claimed" if winner.claimed_at is not None else "unclaimed"


async def entries_count(session: AsyncSession, giveaway_id: str) -> int:
    return await session.scalar(
        select(func.count()).where(GiveawayEntry.giveaway_id == giveaway_id)
    )


async def timeline_entries(
    session: AsyncSession, live_session_id: str
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """The session's giveaways starting and being drawn, as (at, kind, data)."""
    giveaways = (
        await session.scalars(select(Giveaway).where(Giveaway.live_session_id == live_session_id))
    ).all()
    entries: list[tuple[datetime, str, dict[str, Any]]] = []
    for giveaway in giveaways:
        data = giveaway_data(giveaway)
        entries.append((giveaway.starts_at, "giveaway.started", data))
        if giveaway.drawn_at is not None:
            entries.append((giveaway.drawn_at, "giveaway.drawn", data))
    return sorted(entries, key=lambda entry: entry[0])


async def stats(session: AsyncSession, live_session_id: str) -> dict[str, int]:
    """How many giveaways the session ran, entries they took, winners, prizes claimed."""
    in_session = select(Giveaway.id).where(Giveaway.live_session_id == live_session_id)
    giveaways = await session.scalar(select(func.count()).select_from(in_session.subquery()))
    entries = await session.scalar(
        select(func.count()).where(GiveawayEntry.giveaway_id.in_(in_session))
    )
    winners, claimed = (
        await session.execute(
            select(func.count(), func.count(GiveawayWinner.claimed_at)).where(
                GiveawayWinner.giveaway_id.in_(in_session)
            )
        )
    ).one()
    return {
        "giveaways": giveaways or 0,
        "entries": entries or 0,
        "winners": winners,
        "prizes_claimed": claimed,
    }
