"""Who may act for a shop. Every write on a shop's data (products, orders...) goes
through `require_shop_access` so ownership is checked in one place.

Roles in a shop: its owner, the moderators the owner added, and any admin.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.accounts.models import Role
from commerce.accounts.tokens import Principal
from commerce.shops.models import Shop, ShopModerator
from storage.web import Problem

OWNER = "owner"
MODERATOR = "moderator"
ADMIN = "admin"
ANY_SHOP_ROLE = frozenset({OWNER, MODERATOR, ADMIN})


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


async def _role_in(session: AsyncSession, principal: Principal, shop: Shop) -> str | None:
    if principal.role == Role.ADMIN:
        return ADMIN
    if shop.owner_id == principal.user_id:
        return OWNER
    moderator = await session.scalar(
        select(ShopModerator.user_id).where(
            ShopModerator.shop_id == shop.id, ShopModerator.user_id == principal.user_id
        )
    )
    return MODERATOR if moderator is not None else None
