"""Shops: creation with a unique slug, optional admin approval, and moderators.

A seller may own several shops (one per brand, say); nothing in the model needs
one shop per seller, and a limit is easier to add later than to lift.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.models import Role, User
from commerce.accounts.tokens import Principal
from commerce.shops.access import ADMIN, OWNER, require_shop_access, shop_role
from commerce.shops.models import Shop, ShopModerator, ShopStatus
from commerce.text import slugify
from storage.ids import new_id
from storage.web import Problem
from storage.web.pagination import PageQuery, keyset_page

log = logging.getLogger("streamcart.shops")

SLUG_ATTEMPTS = 5
SHOP_NOT_FOUND = Problem(404, "shop-not-found", "There is no shop with this id.")


class ShopService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], approval_required: bool) -> None:
        self._sessions = sessions
        self._approval_required = approval_required

    async def create(self, principal: Principal, name: str, description: str) -> Shop:
        """Active at once, or pending until an admin approves when approval is required
        (an admin's own shop needs nobody's approval)."""
        pending = self._approval_required and principal.role != Role.ADMIN
        base = slugify(name) or "shop"
        attempts = 0
        while True:
            shop = Shop(
                id=new_id(),
                owner_id=principal.user_id,
                name=name,
                description=description,
                status=ShopStatus.PENDING if pending else ShopStatus.ACTIVE,
                created_at=datetime.now(UTC),
            )
            try:
                async with self._sessions.begin() as session:
                    shop.slug = await _free_slug(session, base)
                    session.add(shop)
            except IntegrityError:  # another shop took the slug between our read and insert
                attempts += 1
                if attempts == SLUG_ATTEMPTS:
                    raise
                continue
            log.info("shop created", extra={"shop_id": shop.id, "status": shop.status})
            return shop

    async def list_active(self, page: PageQuery) -> tuple[list[Shop], str | None]:
        async with self._sessions() as session:
            query = select(Shop).where(Shop.status == ShopStatus.ACTIVE)
            return await keyset_page(session, query, Shop.id, page)

    async def list_run_by(
        self, principal: Principal, page: PageQuery
    ) -> tuple[list[Shop], str | None]:
        """The shops the account owns or moderates, whatever their status: a studio's
        choice, including a shop still waiting for approval."""
        async with self._sessions() as session:
            moderated = select(ShopModerator.shop_id).where(
                ShopModerator.user_id == principal.user_id
            )
            query = select(Shop).where(
                or_(Shop.owner_id == principal.user_id, Shop.id.in_(moderated))
            )
            return await keyset_page(session, query, Shop.id, page)

    async def get(self, principal: Principal | None, shop_id: str) -> Shop:
        """Active shops are public; others only exist for the people who run them."""
        async with self._sessions() as session:
            shop = await session.get(Shop, shop_id)
            if shop is None:
                raise SHOP_NOT_FOUND
            if shop.status != ShopStatus.ACTIVE and (
                principal is None or await shop_role(session, principal, shop_id) is None
            ):
                raise SHOP_NOT_FOUND
            return shop

    async def approve(self, principal: Principal, shop_id: str) -> Shop:
        """pending -> active in one conditional UPDATE, so two admins cannot both approve."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            approved = await session.scalar(
                update(Shop)
                .where(Shop.id == shop_id, Shop.status == ShopStatus.PENDING)
                .values(status=ShopStatus.ACTIVE, approved_at=now, approved_by=principal.user_id)
                .returning(Shop.id)
            )
            shop = await session.get(Shop, shop_id, populate_existing=True)
        if shop is None:
            raise SHOP_NOT_FOUND
        if approved is None:
            raise Problem(409, "shop-not-pending", f"The shop is {shop.status}, not pending.")
        log.info("shop approved", extra={"shop_id": shop_id, "admin_id": principal.user_id})
        return shop

    async def add_moderator(self, principal: Principal, shop_id: str, user_id: str) -> None:
        """Idempotent: adding a moderator twice leaves one membership."""
        try:
            async with self._sessions.begin() as session:
                await require_shop_access(session, principal, shop_id, allow={OWNER, ADMIN})
                user = await session.get(User, user_id)
                if user is None or not user.is_active:
                    raise Problem(422, "unknown-user", "There is no active account with this id.")
                if user.role != Role.MODERATOR:
                    raise Problem(422, "not-a-moderator", "The account is not a moderator.")
                if await session.get(ShopModerator, (shop_id, user_id)) is None:
                    session.add(
                        ShopModerator(shop_id=shop_id, user_id=user_id, added_at=datetime.now(UTC))
                    )
        except IntegrityError:
            return  # a concurrent request added the same membership: same outcome

    async def remove_moderator(self, principal: Principal, shop_id: str, user_id: str) -> None:
        """Idempotent: removing someone who is not a moderator is not an error."""
        async with self._sessions.begin() as session:
            await require_shop_access(session, principal, shop_id, allow={OWNER, ADMIN})
            await session.execute(
                delete(ShopModerator).where(
                    ShopModerator.shop_id == shop_id, ShopModerator.user_id == user_id
                )
            )


async def _free_slug(session: AsyncSession, base: str) -> str:
    """`base`, or `base-2`, `base-3`... whichever is free first."""
    similar = or_(Shop.slug == base, Shop.slug.startswith(f"{base}-", autoescape=True))
    taken = set((await session.scalars(select(Shop.slug).where(similar))).all())
    if base not in taken:
        return base
    suffix = 2
    while f"{base}-{suffix}" in taken:
        suffix += 1
    return f"{base}-{suffix}"
