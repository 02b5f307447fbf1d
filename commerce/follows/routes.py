"""Follow endpoints: /api/shops/{id}/follow and /api/me/follows."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from commerce.follows.service import FollowService
from commerce.shops.models import Shop
from commerce.shops.schemas import ShopOut, ShopPage
from storage.web import ApiRoutes
from storage.web.pagination import PageQuery

routes = ApiRoutes()
FOLLOWS = web.AppKey("follows", FollowService)
TAGS = ("shops",)


async def shops_out(request: web.Request, shops: list[Shop]) -> list[ShopOut]:
    """Shops as the API shows them, with their follower counts (one query per page)."""
    counts = await request.app[FOLLOWS].counts([shop.id for shop in shops])
    return [
        ShopOut.model_validate(shop, from_attributes=True).model_copy(
            update={"follower_count": counts.get(shop.id, 0)}
        )
        for shop in shops
    ]


@routes.route(
    "POST",
    "/api/shops/{id}/follow",
    summary="Follow a shop",
    tags=TAGS,
    status=204,
    auth=True,
    errors=(404,),
)
async def follow_shop(request: web.Request) -> None:
    """Idempotent. Followers hear when the shop schedules a session, goes live or starts
    a flash sale. 404 `shop-not-found` for a shop that is not active."""
    principal = await require_principal(request)
    await request.app[FOLLOWS].follow(principal.user_id, request.match_info["id"])


@routes.route(
    "DELETE",
    "/api/shops/{id}/follow",
    summary="Stop following a shop",
    tags=TAGS,
    status=204,
    auth=True,
)
async def unfollow_shop(request: web.Request) -> None:
    """Idempotent."""
    principal = await require_principal(request)
    await request.app[FOLLOWS].unfollow(principal.user_id, request.match_info["id"])


@routes.route(
    "GET",
    "/api/me/follows",
    summary="The shops I follow, newest shop first",
    tags=TAGS,
    query=PageQuery,
    response=ShopPage,
    auth=True,
)
async def list_follows(request: web.Request, query: PageQuery) -> ShopPage:
    principal = await require_principal(request)
    shops, next_cursor = await request.app[FOLLOWS].followed(principal.user_id, query)
    return ShopPage(items=await shops_out(request, shops), next_cursor=next_cursor)
