"""Flash-sale endpoints under /api/live-sessions/{live_session_id}/flash-sales."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from commerce.orders.models import PaymentMethod
from commerce.orders.routes import order_out
from commerce.orders.schemas import OrderOut
from commerce.payments.routes import BANK
from live.flash.schemas import ClaimIn, FlashSaleIn, FlashSaleOut, FlashSalePage
from live.flash.service import FlashSaleService
from storage.web import ApiRoutes
from storage.web.pagination import PageQuery

routes = ApiRoutes()
FLASH_SALES = web.AppKey("flash_sales", FlashSaleService)
TAGS = ("flash sales",)
BASE = "/api/live-sessions/{live_session_id}/flash-sales"


@routes.route(
    "POST",
    BASE,
    summary="Start a flash sale",
    tags=TAGS,
    body=FlashSaleIn,
    response=FlashSaleOut,
    status=201,
    auth=True,
    errors=(403, 404, 409, 422),
)
async def start_flash_sale(request: web.Request, body: FlashSaleIn) -> FlashSaleOut:
    """For the shop's team, on a product on show in a session that has not ended: a
    flash price below the regular price, for `quantity` units (at most the stock now),
    `per_buyer_limit` per buyer, during `duration_seconds` after an optional countdown.
    One flash sale at a time per product (409 `flash-sale-active`)."""
    principal = await require_principal(request)
    flash = await request.app[FLASH_SALES].start(
        principal,
        request.match_info["live_session_id"],
        body.product_id,
        body.variant_id,
        body.flash_price,
        body.quantity,
        body.duration_seconds,
        body.per_buyer_limit,
        body.countdown_seconds,
    )
    return FlashSaleOut.model_validate(flash)


@routes.route(
    "GET",
    BASE,
    summary="A session's flash sales",
    tags=TAGS,
    query=PageQuery,
    response=FlashSalePage,
    errors=(404,),
)
async def list_flash_sales(request: web.Request, query: PageQuery) -> FlashSalePage:
    """Newest first, with what is left of each and its phase at `server_time`."""
    flashes, cursor = await request.app[FLASH_SALES].list(
        request.match_info["live_session_id"], query
    )
    return FlashSalePage(
        items=[FlashSaleOut.model_validate(f) for f in flashes], next_cursor=cursor
    )


@routes.route(
    "POST",
    BASE + "/{flash_id}/claim",
    summary="Claim units of a flash sale",
    tags=TAGS,
    body=ClaimIn,
    response=OrderOut,
    status=201,
    auth=True,
    errors=(403, 404, 409),
)
async def claim_flash_sale(request: web.Request, body: ClaimIn) -> OrderOut:
    """Takes the units and places an order at the flash price in one step, as checkout
    does (a bank-transfer order awaits payment with its deadline). 409 `flash-not-started`,
    `flash-ended`, `flash-sold-out` or `flash-limit-reached`; 403 for the shop's team."""
    principal = await require_principal(request)
    placed = await request.app[FLASH_SALES].claim(
        principal,
        request.match_info["live_session_id"],
        request.match_info["flash_id"],
        body.quantity,
        PaymentMethod(body.payment_method),
    )
    return order_out(placed, request.app[BANK])
