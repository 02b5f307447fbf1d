"""Who may act for a shop. Every write on a shop's data (products, orders...) goes
through `require_shop_access` so ownership is checked in one place.

Roles in a shop: its owner, the moderators the owner added, and any admin.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.models import Role
from commerce.accounts.tokens import Principal
from commerce.shops.models import Shop, ShopModerator
from storage.single_flight import SingleFlight
from storage.web import Problem

OWNER = "owner"
MODERATOR = "moderator"
ADMIN = "admin"
ANY_SHOP_ROLE = frozenset({OWNER, MODERATOR, ADMIN})
MAX_CACHED_TEAMS = 10_000


async def shop_role(session: AsyncSession, principal: Principal, shop_id: str) -> str | None:
    """The caller's role in the shop, or None (also when the shop does not exist)."""
    shop = await session.get(Shop, shop_id)
    return None if shop is None else await _role_in(session, principal, shop)


async def require_shop_access(
    session: AsyncSession,
    principal: Principal,
    shop_id: str,
    *,
    allow: Collection[str] = ANY_SHOP_ROLE,
) -> Shop:
    """The shop when the caller holds one of the `allow`ed roles in it.

    404 `shop-not-found` when it does not exist, 403 `not-your-shop` otherwise.
    """
    shop = await session.get(Shop, shop_id)
    if shop is None:
        raise Problem(404, "shop-not-found", "There is no shop with this id.")
    if await _role_in(session, principal, shop) not in allow:
        raise Problem(403, "not-your-shop", "You may not act for this shop.")
    return shop


def _role_without_moderators(principal: Principal, owner_id: str | None) -> str | None:
    if principal.role == Role.ADMIN:
        return ADMIN
    return OWNER if principal.user_id == owner_id else None


async def _role_in(session: AsyncSession, principal: Principal, shop: Shop) -> str | None:
    if role := _role_without_moderators(principal, shop.owner_id):
        return role
    moderator = await session.scalar(
        select(ShopModerator.user_id).where(
            ShopModerator.shop_id == shop.id, ShopModerator.user_id == principal.user_id
        )
    )
    return MODERATOR if moderator is not None else None


class ShopTeams:
    """Who is on each shop's team (owner and moderators), read from the database at most
    once per `ttl` seconds per shop: for hot paths that ask per request (every claim in
    a flash sale, every viewer joining). A moderator added or removed counts on every
    process within `ttl`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = 5.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._teams: dict[str, tuple[float, str, frozenset[str]]] = {}
        self._loads: SingleFlight[tuple[float, str, frozenset[str]]] = SingleFlight()

    async def role(self, principal: Principal | None, shop_id: str) -> str | None:
        """As `shop_role`, from the cached team; None also when the shop does not exist."""
        if principal is None:
            return None
        if principal.role == Role.ADMIN:
            return ADMIN
        now = time.monotonic()
        team = self._teams.get(shop_id)
        if team is None or team[0] <= now:
            team = await self._loads.run(shop_id, lambda: self._load(shop_id, now + self._ttl))
        _, owner_id, moderators = team
        if role := _role_without_moderators(principal, owner_id):
            return role
        return MODERATOR if principal.user_id in moderators else None

    async def _load(self, shop_id: str, until: float) -> tuple[float, str, frozenset[str]]:
        async with self._sessions() as session:
            owner_id = await session.scalar(select(Shop.owner_id).where(Shop.id == shop_id))
            moderators = frozenset(
                await session.scalars(
                    select(ShopModerator.user_id).where(ShopModerator.shop_id == shop_id)
                )
            )
        team = (until, owner_id or "", moderators)
        if len(self._teams) >= MAX_CACHED_TEAMS:
            self._teams.clear()
        self._teams[shop_id] = team
        return team
