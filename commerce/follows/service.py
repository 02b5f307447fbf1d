"""Follow and unfollow shops; follower counts for the shops API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.follows.models import ShopFollow
from commerce.shops.models import Shop, ShopStatus
from commerce.shops.service import SHOP_NOT_FOUND
from storage.web.pagination import PageQuery, keyset_page


class FollowService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def follow(self, user_id: str, shop_id: str) -> None:
        """Idempotent: following twice leaves one follow. Only active shops can be followed."""
        try:
            async with self._sessions.begin() as session:
                shop = await session.get(Shop, shop_id)
                if shop is None or shop.status != ShopStatus.ACTIVE:
                    raise SHOP_NOT_FOUND
                if await session.get(ShopFollow, (user_id, shop_id)) is None:
                    session.add(
                        ShopFollow(user_id=user_id, shop_id=shop_id, created_at=datetime.now(UTC))
                    )
        except IntegrityError:
            return  # a concurrent request added the same follow: same outcome

    async def unfollow(self, user_id: str, shop_id: str) -> None:
        """Idempotent: unfollowing a shop one does not follow is not an error."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(ShopFollow).where(
                    ShopFollow.user_id == user_id, ShopFollow.shop_id == shop_id
                )
            )

    async def followed(self, user_id: str, page: PageQuery) -> tuple[list[Shop], str | None]:
        """The shops the user follows, newest shop first (keyset on the shop id)."""
        async with self._sessions() as session:
            query = (
                select(Shop)
                .join(ShopFollow, ShopFollow.shop_id == Shop.id)
                .where(ShopFollow.user_id == user_id)
            )
            return await keyset_page(session, query, Shop.id, page)

    async def counts(self, shop_ids: Sequence[str]) -> dict[str, int]:
        """Followers per shop, in one query for a whole page of shops."""
        if not shop_ids:
            return {}
        async with self._sessions() as session:
            rows = await session.execute(
                select(ShopFollow.shop_id, func.count())
                .where(ShopFollow.shop_id.in_(shop_ids))
                .group_by(ShopFollow.shop_id)
            )
            return {shop_id: count for shop_id, count in rows.all()}
