"""Ending auctions, exactly once, from whichever process gets there first.

Every process ticks, and also wakes at each end it knows of (an auction it started, a
bid it decided), so an auction ends on time without a tight tick. Ending is one
conditional UPDATE (`... WHERE status = 'running' AND ends_at <= now`, the database's
clock on PostgreSQL): the process whose UPDATE matches ends it; the others, and a
bid racing it, wait for its row lock and then find it ended (or, when the bid came
first, its end moved on). In the same transaction the winner's order is placed at the
winning price with the usual payment deadline (when the reserve is met), and
`auction.ended` is staged in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.models import User
from commerce.orders.checkout import CheckoutService, Line
from commerce.orders.models import PaymentMethod
from live.auctions.models import Auction, AuctionStatus
from live.auctions.views import auction_data, reserve_met
from storage.ids import new_id
from storage.outbox import add_event
from storage.periodic import Periodic
from storage.sql import UtcDateTime
from storage.web import Problem

log = logging.getLogger("streamcart.auctions")
TICK_SECONDS = 1.0


class AuctionCloser:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        checkout: CheckoutService,
        interval: float = TICK_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._checkout = checkout
        self._periodic = Periodic("auction-closer", interval, self.tick)
        self._wakes: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task] = set()

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        for handle in self._wakes.values():
            handle.cancel()
        self._wakes.clear()
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)

    def wake_at(self, auction_id: str, ends_at: datetime) -> None:
        """Try to end the auction at `ends_at` (again, if it was moved by then)."""
        if (old := self._wakes.pop(auction_id, None)) is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        delay = max((ends_at - datetime.now(UTC)).total_seconds(), 0.0)
        self._wakes[auction_id] = loop.call_later(delay, self._spawn, auction_id)

    def _spawn(self, auction_id: str) -> None:
        self._wakes.pop(auction_id, None)
        task = asyncio.create_task(self._close_logged(auction_id), name="auction-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_logged(self, auction_id: str) -> None:
        try:
            await self.close(auction_id)
        except Exception:  # the tick tries again
            log.exception("ending auction %s failed", auction_id)

    async def tick(self) -> int:
        """End every auction that is due; returns how many this process ended."""
        async with self._sessions() as session:
            due = (
                await session.scalars(
                    select(Auction.id).where(
                        Auction.status == AuctionStatus.RUNNING,
                        Auction.ends_at <= datetime.now(UTC),
                    )
                )
            ).all()
        return sum([await self.close(auction_id) is not None for auction_id in due])

    async def close(self, auction_id: str) -> dict[str, Any] | None:
        """End the auction if it is due and still running: its data as ended, or None
        when it is not due or another process ended it."""
        async with self._sessions.begin() as session:
            now = _now(session)
            auction = await session.scalar(
                update(Auction)
                .where(
                    Auction.id == auction_id,
                    Auction.status == AuctionStatus.RUNNING,
                    Auction.ends_at <= now,
                )
                .values(status=AuctionStatus.ENDED, ended_at=now)
                .returning(Auction)
            )
            if auction is None:
                return None
            winner_name = None
            if reserve_met(auction):
                auction.order_id = await self.place_order(
                    session, auction, auction.leader_id, auction.current_price
                )
                winner_name = await display_name(session, auction.leader_id)
            data = auction_data(auction, winner_name)
            add_event(session, "auction.ended", data)
        log.info("auction ended", extra={"auction_id": auction_id, "order_id": data["order_id"]})
        return data

    async def place_order(
        self, session: AsyncSession, auction: Auction, buyer_id: str, price: int
    ) -> str | None:
        """An order for one unit at `price`, awaiting payment by bank transfer with the
        usual deadline; None when it cannot be placed (no stock left), so the auction
        still ends and the seller sees why there is no order."""
        order_id = new_id()
        line = Line(auction.product_id, 1, auction.variant_id, auction.live_session_id, price)
        try:
            async with session.begin_nested():
                await self._checkout.place_in(
                    session, buyer_id, PaymentMethod.BANK_TRANSFER, [line], order_id=order_id
                )
        except Problem as refused:
            log.warning(
                "no order for auction %s: %s", auction.id, refused.code, extra={"buyer": buyer_id}
            )
            return None
        return order_id


async def display_name(session: AsyncSession, user_id: str) -> str | None:
    return await session.scalar(select(User.display_name).where(User.id == user_id))


def _now(session: AsyncSession) -> Any:
    """The database's clock on PostgreSQL (the one bids are judged by), ours elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        return func.clock_timestamp()
    return literal(datetime.now(UTC), UtcDateTime())
