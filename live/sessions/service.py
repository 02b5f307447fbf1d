"""Live sessions: scheduling, going live and ending, stream keys, products on show, pins."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.tokens import Principal
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.pricing import regular_price
from commerce.shops.access import require_shop_access, shop_role
from commerce.shops.models import Shop, ShopStatus
from live.sessions.models import FlashSale, LiveProduct, LiveSession, LiveStatus
from live.sessions.pins import close_pin, record_pin
from live.sessions.schemas import ShowcaseItemOut
from storage.ids import new_id
from storage.outbox import add_event
from storage.web import Problem
from storage.web.pagination import PageQuery, keyset_page

log = logging.getLogger("streamcart.live")
NOT_FOUND = Problem(404, "live-session-not-found", "No such live session.")


def new_stream_key() -> str:
    return "sk_" + secrets.token_urlsafe(24)


def hash_stream_key(key: str) -> str:
    """Only this is stored: a leaked database does not let anyone stream as the shop."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewProduct:
    product_id: str
    live_price: int | None = None
    live_stock: int | None = None


class LiveSessionService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self,
        principal: Principal,
        shop_id: str,
        title: str,
        description: str,
        scheduled_at: datetime,
        products: list[NewProduct],
    ) -> tuple[LiveSession, str]:
        """Returns the session and its stream key (shown to the owner only, now)."""
        key = new_stream_key()
        async with self._sessions.begin() as session:
            shop = await require_shop_access(session, principal, shop_id)
            if shop.status != ShopStatus.ACTIVE:
                raise Problem(409, "shop-not-active", "The shop is not active yet.")
            live = LiveSession(
                id=new_id(),
                shop_id=shop_id,
                host_id=principal.user_id,
                title=title,
                description=description,
                status=LiveStatus.SCHEDULED,
                scheduled_at=scheduled_at,
                stream_key_hash=hash_stream_key(key),
                slow_mode_seconds=0,
                created_at=datetime.now(UTC),
            )
            session.add(live)
            await session.flush()
            await _add_products(session, live, products)
            add_event(
                session,
                "live.scheduled",
                {
                    "live_session_id": live.id,
                    "shop_id": shop_id,
                    "title": title,
                    "scheduled_at": scheduled_at.isoformat(),
                },
            )
        return live, key

    async def get(self, live_session_id: str) -> LiveSession:
        async with self._sessions() as session:
            live = await session.get(LiveSession, live_session_id)
        if live is None:
            raise NOT_FOUND
        return live

    async def list(
        self, page: PageQuery, status: str | None, shop_id: str | None
    ) -> tuple[list[LiveSession], str | None]:
        query = select(LiveSession).join(Shop, Shop.id == LiveSession.shop_id)
        query = query.where(Shop.status == ShopStatus.ACTIVE)
        if status:
            query = query.where(LiveSession.status == status)
        if shop_id:
            query = query.where(LiveSession.shop_id == shop_id)
        async with self._sessions() as session:
            return await keyset_page(session, query, LiveSession.id, page)

    async def role(self, principal: Principal | None, live: LiveSession) -> str | None:
        """owner, moderator or admin of the session's shop; None for everyone else."""
        if principal is None:
            return None
        async with self._sessions() as session:
            return await shop_role(session, principal, live.shop_id)

    async def require_staff(self, principal: Principal, live_session_id: str) -> LiveSession:
        live = await self.get(live_session_id)
        if await self.role(principal, live) is None:
            raise Problem(403, "not-your-shop", "Only the shop's team may do this.")
        return live

    async def rotate_key(self, principal: Principal, live_session_id: str) -> str:
        """A new key; the old one stops working at once (also for a publisher mid-stream)."""
        live = await self.require_staff(principal, live_session_id)
        if live.status == LiveStatus.ENDED:
            raise Problem(409, "live-session-ended", "This live session has ended.")
        key = new_stream_key()
        async with self._sessions.begin() as session:
            await session.execute(
                update(LiveSession)
                .where(LiveSession.id == live.id)
                .values(stream_key_hash=hash_stream_key(key))
            )
        return key

    async def by_stream_key(self, key: str) -> LiveSession | None:
        """The session a publisher may stream to with this key (not ended)."""
        async with self._sessions() as session:
            return await session.scalar(
                select(LiveSession).where(
                    LiveSession.stream_key_hash == hash_stream_key(key),
                    LiveSession.status != LiveStatus.ENDED,
                )
            )

    async def publisher_seen(self, live_session_id: str) -> None:
        """The session's publisher is streaming now (a heartbeat, see `silent_since`)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(LiveSession)
                .where(LiveSession.id == live_session_id)
                .values(publisher_seen_at=datetime.now(UTC))
            )

    async def silent_since(self, moment: datetime) -> list[str]:
        """Live sessions whose publisher was last seen before `moment`: a process that
        held it stopped without ending it. Sessions never streamed to are not listed."""
        async with self._sessions() as session:
            return list(
                await session.scalars(
                    select(LiveSession.id).where(
                        LiveSession.status == LiveStatus.LIVE,
                        LiveSession.publisher_seen_at < moment,
                    )
                )
            )

    async def go_live(self, live_session_id: str, reason: str) -> LiveSession | None:
        """scheduled -> live; None when it was not scheduled (already live or ended)."""
        return await self._transition(
            live_session_id, LiveStatus.SCHEDULED, LiveStatus.LIVE, reason
        )

    async def end(self, live_session_id: str, reason: str) -> LiveSession | None:
        """scheduled or live -> ended; None when it had already ended."""
        live = await self._transition(live_session_id, LiveStatus.LIVE, LiveStatus.ENDED, reason)
        if live is None:
            live = await self._transition(
                live_session_id, LiveStatus.SCHEDULED, LiveStatus.ENDED, reason
            )
        return live

    async def _transition(self, live_session_id, before, after, reason) -> LiveSession | None:
        now = datetime.now(UTC)
        stamp = {"started_at": now} if after == LiveStatus.LIVE else {"ended_at": now}
        async with self._sessions.begin() as session:
            live = await session.scalar(
                update(LiveSession)
                .where(LiveSession.id == live_session_id, LiveSession.status == before)
                .values(status=after, **stamp)
                .returning(LiveSession)
            )
            if live is not None and after == LiveStatus.ENDED:
                await close_pin(session, live.id, now)
                # No flash sale outlives its stream: the announcer then emits flash.ended.
                await session.execute(
                    update(FlashSale)
                    .where(
                        FlashSale.live_session_id == live.id,
                        FlashSale.ends_at > now,
                        FlashSale.cancelled_at.is_(None),
                    )
                    .values(cancelled_at=now)
                )
            if live is not None:
                event = "live.started" if after == LiveStatus.LIVE else "live.ended"
                add_event(
                    session,
                    event,
                    {"live_session_id": live.id, "shop_id": live.shop_id, "reason": reason},
                )
        if live is not None:
            log.info("live session %s", after.value, extra={"live_session_id": live.id})
        return live

    async def add_products(
        self, principal: Principal, live_session_id: str, products: list[NewProduct]
    ) -> None:
        live = await self.require_staff(principal, live_session_id)
        async with self._sessions.begin() as session:
            await _add_products(session, live, products)

    async def remove_product(self, principal: Principal, live_session_id: str, product_id: str):
        live = await self.require_staff(principal, live_session_id)
        async with self._sessions.begin() as session:
            await session.execute(
                delete(LiveProduct).where(
                    LiveProduct.live_session_id == live.id, LiveProduct.product_id == product_id
                )
            )
            await session.execute(
                update(LiveSession)
                .where(LiveSession.id == live.id, LiveSession.pinned_product_id == product_id)
                .values(pinned_product_id=None)
            )
            await close_pin(session, live.id, datetime.now(UTC), product_id)

    async def showcase(self, live_session_id: str) -> list[ShowcaseItemOut]:
        async with self._sessions() as session:
            return await showcase(session, live_session_id)

    async def set_pin(self, live_session_id: str, product_id: str | None) -> ShowcaseItemOut | None:
        """Pin a product on show (one at a time) or unpin; returns the pinned item. The pin
        timeline (analytics, replays) is written in the same transaction."""
        async with self._sessions.begin() as session:
            items = {i.product_id: i for i in await showcase(session, live_session_id)}
            if product_id is not None and product_id not in items:
                raise Problem(404, "product-not-on-show", "That product is not on show here.")
            await session.execute(
                update(LiveSession)
                .where(LiveSession.id == live_session_id)
                .values(pinned_product_id=product_id)
            )
            await record_pin(session, live_session_id, product_id, datetime.now(UTC))
        return items.get(product_id) if product_id else None


async def showcase(session: AsyncSession, live_session_id: str) -> list[ShowcaseItemOut]:
    rows = (
        await session.execute(
            select(LiveProduct, Product)
            .join(Product, Product.id == LiveProduct.product_id)
            .where(LiveProduct.live_session_id == live_session_id)
            .order_by(LiveProduct.position, LiveProduct.product_id)
        )
    ).all()
    if not rows:
        return []
    variants = (
        await session.scalars(
            select(Variant).where(
                Variant.product_id.in_([p.id for _, p in rows]), ~Variant.archived
            )
        )
    ).all()
    by_product: dict[str, list[Variant]] = {}
    for variant in variants:
        by_product.setdefault(variant.product_id, []).append(variant)
    items = []
    for on_show, product in rows:
        units = by_product.get(product.id, [])
        available = sum(max(0, v.on_hand - v.reserved) for v in units)
        if on_show.live_stock is not None:
            available = min(available, on_show.live_stock - on_show.live_sold)
        items.append(
            ShowcaseItemOut(
                product_id=product.id,
                name=product.name,
                image=product.images[0] if product.images else None,
                price=min((regular_price(product, v) for v in units), default=product.base_price),
                live_price=on_show.live_price,
                available=available,
                position=on_show.position,
            )
        )
    return items


async def _add_products(session: AsyncSession, live: LiveSession, products: list[NewProduct]):
    """Products already on show are left as they are; one listed twice in `products` is
    refused (422 `duplicate-product`): its two entries may disagree on price or stock,
    and which one the seller meant cannot be guessed."""
    if not products:
        return
    ids = [p.product_id for p in products]
    twice = sorted(i for i, times in Counter(ids).items() if times > 1)
    if twice:
        raise Problem(
            422,
            "duplicate-product",
            "Each product can be listed once; it was listed more than once.",
            product_ids=twice,
        )
    found = dict(
        (
            await session.execute(
                select(Product.id, Product.base_price).where(
                    Product.id.in_(ids),
                    Product.shop_id == live.shop_id,
                    Product.status == ProductStatus.ACTIVE,
                )
            )
        ).all()
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise Problem(
            422,
            "product-not-in-shop",
            "Only the shop's active products can be shown.",
            product_ids=missing,
        )
    existing = set(
        (
            await session.scalars(
                select(LiveProduct.product_id).where(LiveProduct.live_session_id == live.id)
            )
        ).all()
    )
    for position, item in enumerate(products, start=len(existing)):
        if item.product_id in existing:
            continue
        session.add(
            LiveProduct(
                live_session_id=live.id,
                product_id=item.product_id,
                live_price=item.live_price,
                live_stock=item.live_stock,
                live_sold=0,
                position=position,
            )
        )
