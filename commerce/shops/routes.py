"""Shop endpoints under /api/shops."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import optional_principal, require_principal
from commerce.accounts.models import Role
from commerce.follows.routes import shops_out
from commerce.shops.models import Shop
from commerce.shops.schemas import ModeratorIn, ShopIn, ShopOut, ShopPage
from commerce.shops.service import ShopService
from storage.web import ApiRoutes
from storage.web.pagination import PageQuery

routes = ApiRoutes()
SHOPS = web.AppKey("shops", ShopService)
TAGS = ("shops",)


async def shop_out(request: web.Request, shop: Shop) -> ShopOut:
    return (await shops_out(request, [shop]))[0]


@routes.route(
    "POST",
    "/api/shops",
    summary="Open a shop",
    tags=TAGS,
    body=ShopIn,
    response=ShopOut,
    status=201,
    auth=True,
    errors=(403,),
)
async def create_shop(request: web.Request, body: ShopIn) -> ShopOut:
    """Sellers and admins only. The slug comes from the name with diacritics folded
    ("Áo Đẹp" -> "ao-dep"), with `-2`, `-3`... when taken. The shop is pending until an
    admin approves it when STREAMCART_SHOP_APPROVAL_REQUIRED is on, otherwise active.
    A seller may own several shops."""
    principal = await require_principal(request, Role.SELLER, Role.ADMIN)
    shop = await request.app[SHOPS].create(principal, body.name, body.description)
    return await shop_out(request, shop)


@routes.route(
    "GET",
    "/api/shops",
    summary="List active shops, newest first",
    tags=TAGS,
    query=PageQuery,
    response=ShopPage,
)
async def list_shops(request: web.Request, query: PageQuery) -> ShopPage:
    shops, next_cursor = await request.app[SHOPS].list_active(query)
    return ShopPage(items=await shops_out(request, shops), next_cursor=next_cursor)


@routes.route(
    "GET",
    "/api/shops/mine",
    summary="The shops I own or moderate, newest first",
    tags=TAGS,
    query=PageQuery,
    response=ShopPage,
    auth=True,
)
async def list_my_shops(request: web.Request, query: PageQuery) -> ShopPage:
    """Whatever their status (pending, active, suspended): what a seller's or
    moderator's studio chooses from."""
    principal = await require_principal(request)
    shops, next_cursor = await request.app[SHOPS].list_run_by(principal, query)
    return ShopPage(items=await shops_out(request, shops), next_cursor=next_cursor)


@routes.route(
    "GET",
    "/api/shops/{id}",
    summary="One shop",
    tags=TAGS,
    response=ShopOut,
    errors=(401, 404),
)
async def get_shop(request: web.Request) -> ShopOut:
    """Public for active shops; a pending or suspended shop is visible only to its owner,
    its moderators and admins (send a bearer token), and 404 for everyone else."""
    principal = await optional_principal(request)
    shop = await request.app[SHOPS].get(principal, request.match_info["id"])
    return await shop_out(request, shop)


@routes.route(
    "POST",
    "/api/shops/{id}/approve",
    summary="Approve a pending shop (admin)",
    tags=TAGS,
    response=ShopOut,
    auth=True,
    errors=(403, 404, 409),
)
async def approve_shop(request: web.Request) -> ShopOut:
    """409 `shop-not-pending` when the shop is already active or suspended."""
    principal = await require_principal(request, Role.ADMIN)
    shop = await request.app[SHOPS].approve(principal, request.match_info["id"])
    return await shop_out(request, shop)


@routes.route(
    "POST",
    "/api/shops/{id}/moderators",
    summary="Let a moderator act for the shop",
    tags=TAGS,
    body=ModeratorIn,
    status=204,
    auth=True,
    errors=(403, 404),
)
async def add_moderator(request: web.Request, body: ModeratorIn) -> None:
    """Owner or admin. Idempotent. 422 `unknown-user` or `not-a-moderator` when the
    account does not exist or does not have the moderator role."""
    principal = await require_principal(request)
    await request.app[SHOPS].add_moderator(principal, request.match_info["id"], body.user_id)


@routes.route(
    "DELETE",
    "/api/shops/{id}/moderators/{user_id}",
    summary="Stop a moderator acting for the shop",
    tags=TAGS,
    status=204,
    auth=True,
    errors=(403, 404),
)
async def remove_moderator(request: web.Request) -> None:
    """Owner or admin. Idempotent."""
    principal = await require_principal(request)
    shop_id, user_id = request.match_info["id"], request.match_info["user_id"]
    await request.app[SHOPS].remove_moderator(principal, shop_id, user_id)
