"""Announces flash sales starting and ending, exactly once, from whichever process sees
it first.

The phase of a flash sale follows from the clock (`starts_at`, `ends_at`), but
viewers need an event when it changes. Every process ticks; the one whose conditional
UPDATE moves `announced` forward (`... WHERE announced = <what it read>`) stages the
event in the same transaction, the others update nothing. Because the last announced
phase is stored, a restart catches up on what fell due while the server was down; a
sale whose whole window passed meanwhile is announced as ended only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from live.flash.phases import FlashPhase, phase
from live.flash.service import describe
from live.sessions.models import FlashSale
from storage.outbox import add_event
from storage.periodic import Periodic

log = logging.getLogger("streamcart.flash")


class FlashAnnouncer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        interval: float = 0.25,
        on_ended: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_ended = on_ended
        self._periodic = Periodic("flash-announcer", interval, self.tick)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def tick(self, now: datetime | None = None) -> int:
        """Announce every phase change that is due; returns how many this call announced."""
        now = now or datetime.now(UTC)
        async with self._sessions() as session:
            due = (
                await session.scalars(
                    select(FlashSale).where(
                        FlashSale.announced != FlashPhase.ENDED,
                        or_(
                            FlashSale.ends_at <= now,
                            FlashSale.cancelled_at.is_not(None),
                            (FlashSale.starts_at <= now)
                            & (FlashSale.announced != FlashPhase.STARTED),
                        ),
                    )
                )
            ).all()
        announced = 0
        for flash in due:
            after = phase(flash, now)
            async with self._sessions.begin() as session:
                if not await _announce(session, flash.id, flash.announced, after, now):
                    continue
            announced += 1
            if after is FlashPhase.ENDED and self._on_ended is not None:
                await self._on_ended(flash.id)  # e.g. close the claims gate early
        return announced


async def _announce(
    session: AsyncSession, flash_id: str, before: str, after: FlashPhase, now: datetime
) -> bool:
    """Move `announced` from `before` to `after` and stage the event, unless another
    process already did. On PostgreSQL the UPDATE waits for a claim in flight on the same
    row, so `flash.ended` carries the final `sold`."""
    flash = await session.scalar(
        update(FlashSale)
        .where(FlashSale.id == flash_id, FlashSale.announced == before)
        .values(announced=after)
        .returning(FlashSale)
    )
    if flash is None:
        return False
    (data,) = await describe(session, [flash], now)
    add_event(session, f"flash.{after}", data)
    log.info("flash sale %s", after.value, extra={"flash_sale_id": flash_id})
    return True
