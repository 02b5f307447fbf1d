"""Notifications wired into live: pushed to their users' sockets, and the shop of a
live session for the consumer (commerce may not import live, so live answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.notifications.channels import Notification
from commerce.notifications.consumer import SessionShop
from commerce.notifications.service import Listener
from live.hub.context import HubContext, user_room
from live.sessions.models import LiveSession

EVENT = "notification:new"


def pusher(hub: HubContext) -> Listener:
    """Each stored notification to the sockets of its own user, a batch at a time."""

    async def push(batch: Sequence[Notification]) -> None:
        await asyncio.gather(
            *(hub.emit(EVENT, n.to_document(), user_room(n.user_id)) for n in batch)
        )

    return push


def session_shop(sessions: async_sessionmaker[AsyncSession]) -> SessionShop:
    async def shop_of(live_session_id: str) -> str | None:
        async with sessions() as session:
            return await session.scalar(
                select(LiveSession.shop_id).where(LiveSession.id == live_session_id)
            )

    return shop_of
