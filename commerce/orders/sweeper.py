"""Expires unpaid bank-transfer orders whose deadline has passed.

Deadlines live in the database, so a restart loses nothing: the next sweep after
start-up finds whatever expired while the server was down. Several replicas may
sweep at once; each order's transition is conditional, so stock returns once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.orders.lifecycle import SYSTEM, end_unpaid_or_cancel
from commerce.orders.models import Order, OrderStatus
from storage.periodic import Periodic

log = logging.getLogger("streamcart.sweeper")


class ExpirySweeper:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], interval: float, batch_size: int = 100
    ) -> None:
        self._sessions = sessions
        self._batch_size = batch_size
        self._periodic = Periodic("order-expiry-sweeper", interval, self._sweep_and_log)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def sweep(self, now: datetime | None = None) -> int:
        """Expire every overdue order; returns how many this call expired."""
        now = now or datetime.now(UTC)
        expired = 0
        while True:
            async with self._sessions() as session:
                due = (
                    await session.scalars(
                        select(Order.id)
                        .where(
                            Order.status == OrderStatus.PENDING_PAYMENT,
                            Order.payment_deadline <= now,
                        )
                        .order_by(Order.payment_deadline)
                        .limit(self._batch_size)
                    )
                ).all()
            if not due:
                return expired
            for order_id in due:
                async with self._sessions.begin() as session:
                    if await end_unpaid_or_cancel(
                        session,
                        order_id,
                        OrderStatus.EXPIRED,
                        SYSTEM,
                        reason="payment deadline passed",
                    ):
                        expired += 1
            if len(due) < self._batch_size:
                return expired

    async def _sweep_and_log(self) -> None:
        count = await self.sweep()
        if count:
            log.info("expired unpaid orders", extra={"count": count})
