"""The "notifications" consumer: domain events off the bus, turned into notifications.

The bus gives it its own durable queue, retries a failing event with back-off and
dead-letters it when it keeps failing, and skips an event it already handled. A
notification's id is derived from the event, the user and the kind, so an event
retried after a partial failure stores (and pushes) only what was missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select, union
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.models import User
from commerce.follows.models import ShopFollow
from commerce.notifications import kinds as K
from commerce.notifications import messages
from commerce.notifications.channels import Notification, Recipient
from commerce.notifications.kinds import Choice, default_choice
from commerce.notifications.messages import Message
from commerce.notifications.models import NotificationPreference as Pref
from commerce.notifications.service import Delivery, NotificationService
from commerce.orders.models import Order
from commerce.shops.models import Shop, ShopModerator
from storage.bus.port import Event
from storage.ids import uuid7

CONSUMER = "notifications"
PATTERNS = ("order.*", "payment.received", "live.scheduled", "live.started", "flash.started")
FOLLOWER_EVENTS = {
    "live.scheduled": K.SHOP_SCHEDULED,
    "live.started": K.SHOP_LIVE,
    "flash.started": K.FLASH_STARTED,
}

# The shop a live session belongs to: live owns sessions, so the composition root answers.
SessionShop = Callable[[str], Awaitable[str | None]]


def notification_id(event: Event, user_id: str, kind: str) -> str:
    """A UUIDv7 layout (time-ordered, as the API's cursors expect) whose time is the
    event's and whose random bits are a hash of (event, user, kind): the same on retry."""
    ms = int(event.occurred_at.timestamp() * 1000)
    digest = hashlib.sha256(f"{event.id}|{user_id}|{kind}".encode()).digest()[:10]
    return uuid7(ms, int.from_bytes(digest))


class NotificationConsumer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        service: NotificationService,
        session_shop: SessionShop,
    ) -> None:
        self._sessions = sessions
        self._service = service
        self._session_shop = session_shop

    async def handle(self, event: Event) -> None:
        data = event.data
        if event.type in FOLLOWER_EVENTS:
            await self._to_followers(event, FOLLOWER_EVENTS[event.type])
        elif event.type in messages.ORDER_EVENTS:
            buyer = User.id == data["buyer_id"]
            await self._deliver(event, messages.order_message(event.type, data), buyer)
            if event.type == "order.paid":
                await self._deliver(event, messages.seller_paid(data), _team(data["shop_id"]))
        elif event.type == "payment.received" and data.get("order_id"):
            await self._payment(event, data)

    async def _payment(self, event: Event, data: dict[str, Any]) -> None:
        outcome = data["outcome"]
        if outcome in messages.PAYMENT_OUTCOMES:
            buyer = User.id == data["buyer_id"]
            await self._deliver(event, messages.payment_message(data), buyer)
        if outcome in messages.SELLER_PROBLEMS:
            shop_id = select(Order.shop_id).where(Order.id == data["order_id"]).scalar_subquery()
            await self._deliver(event, messages.seller_problem(data), _team(shop_id))

    async def _to_followers(self, event: Event, kind: str) -> None:
        data = event.data
        shop_id = data.get("shop_id") or await self._session_shop(data["live_session_id"])
        if shop_id is None:
            return
        async with self._sessions() as session:
            shop_name = await session.scalar(select(Shop.name).where(Shop.id == shop_id))
        if shop_name is None:
            return
        message = messages.live_message(kind, shop_name, {**data, "shop_id": shop_id})
        followers = select(ShopFollow.user_id).where(ShopFollow.shop_id == shop_id)
        await self._deliver(event, message, User.id.in_(followers))

    async def _deliver(self, event: Event, message: Message, where: Any) -> None:
        async with self._sessions() as session:
            rows = (await session.execute(_recipients(message.kind).where(where))).all()
        created_at = event.occurred_at.isoformat(timespec="microseconds")
        deliveries = [
            Delivery(
                Recipient(user_id, email, name),
                default_choice(message.kind) if in_app is None else Choice(in_app, mail, push),
                Notification(
                    id=notification_id(event, user_id, message.kind),
                    user_id=user_id,
                    kind=message.kind,
                    title=message.title,
                    body=message.body,
                    data=message.data,
                    created_at=created_at,
                ),
            )
            for user_id, email, name, in_app, mail, push in rows
        ]
        await self._service.deliver(deliveries)


def _team(shop_id: str | ColumnElement[str]) -> ColumnElement[bool]:
    """The shop's owner and its moderators: everyone who packs, ships and answers for
    its orders hears of them (each can turn a kind off in their preferences). A
    subquery for the shop keeps it one read with the recipients."""
    owner = select(Shop.owner_id).where(Shop.id == shop_id)
    moderators = select(ShopModerator.user_id).where(ShopModerator.shop_id == shop_id)
    return User.id.in_(union(owner, moderators))


def _recipients(kind: str) -> Select[Any]:
    """Active users with their choice for `kind` (NULLs when they kept the default)."""
    return (
        select(User.id, User.email, User.display_name, Pref.in_app, Pref.email, Pref.push)
        .outerjoin(Pref, and_(Pref.user_id == User.id, Pref.kind == kind))
        .where(User.is_active)
    )
