"""Draws every giveaway whose entries have closed, exactly once across processes.

Every process ticks. The one whose conditional UPDATE (`status = 'open' AND closes_at
<= now`) moves a giveaway to `drawn` draws it, in the same transaction: it reads the
entries (entries still in flight hold the row `FOR SHARE`, so the UPDATE waits for
them), picks the winners from the seed (`live.giveaways.draw`), places each winner's
prize order and stages `giveaway.drawn`. Any other process updates nothing. Because
the state is in the database, a giveaway that closed while every server was down is
drawn at the next start.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.orders.checkout import CheckoutService
from commerce.orders.staging import retrying_transaction
from live.giveaways import draw
from live.giveaways.models import Giveaway, GiveawayEntry, GiveawayStatus, GiveawayWinner
from live.giveaways.prizes import place_prize
from live.giveaways.public import drawn_data
from storage.outbox import add_event
from storage.periodic import Periodic

log = logging.getLogger("streamcart.giveaways")


class GiveawayDrawer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        checkout: CheckoutService,
        interval: float = 0.25,
    ) -> None:
        self._sessions = sessions
        self._checkout = checkout
        self._periodic = Periodic("giveaway-drawer", interval, self.tick)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def tick(self, now: datetime | None = None) -> int:
        """Draw every giveaway that is due; returns how many this call drew."""
        now = now or datetime.now(UTC)
        async with self._sessions() as session:
            due = (
                await session.scalars(
                    select(Giveaway.id).where(
                        Giveaway.status == GiveawayStatus.OPEN, Giveaway.closes_at <= now
                    )
                )
            ).all()
        drawn = 0
        for giveaway_id in due:
            if await retrying_transaction(
                self._sessions, lambda session, gid=giveaway_id: self._draw(session, gid, now)
            ):
                drawn += 1
        return drawn

    async def _draw(self, session: AsyncSession, giveaway_id: str, now: datetime) -> bool:
        giveaway = await session.scalar(
            update(Giveaway)
            .where(
                Giveaway.id == giveaway_id,
                Giveaway.status == GiveawayStatus.OPEN,
                Giveaway.closes_at <= now,
            )
            .values(status=GiveawayStatus.DRAWN, drawn_at=now)
            .returning(Giveaway)
        )
        if giveaway is None:  # drawn or cancelled by someone else meanwhile
            return False
        names = dict(
            (
                await session.execute(
                    select(GiveawayEntry.user_id, GiveawayEntry.display_name).where(
                        GiveawayEntry.giveaway_id == giveaway_id
                    )
                )
            ).all()
        )
        winners = draw.winners(giveaway.seed, names, giveaway.winners_count)
        for rank, user_id in enumerate(winners, start=1):
            order_id = await place_prize(session, self._checkout, giveaway, user_id, now)
            session.add(
                GiveawayWinner(
                    giveaway_id=giveaway_id, user_id=user_id, rank=rank, order_id=order_id
                )
            )
        add_event(session, "giveaway.drawn", drawn_data(giveaway, names, winners))
        log.info(
            "giveaway drawn",
            extra={"giveaway_id": giveaway_id, "entries": len(names), "winners": len(winners)},
        )
        return True
