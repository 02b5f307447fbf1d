"""Voucher endpoints: the shop's team manages them, buyers list the ones they hold."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from commerce.vouchers.models import Voucher
from commerce.vouchers.schemas import (
    ClaimedVoucherList,
    ClaimedVoucherOut,
    VoucherIn,
    VoucherList,
    VoucherOut,
    VoucherPatch,
)
from commerce.vouchers.service import VoucherService
from storage.web import ApiRoutes

routes = ApiRoutes()
VOUCHERS = web.AppKey("vouchers", VoucherService)
TAGS = ("vouchers",)


def voucher_out(voucher: Voucher) -> VoucherOut:
    return VoucherOut.model_validate(voucher, from_attributes=True)


@routes.route(
    "POST",
    "/api/shops/{shop_id}/vouchers",
    summary="Create a voucher",
    tags=TAGS,
    body=VoucherIn,
    response=VoucherOut,
    status=201,
    auth=True,
    errors=(403, 404),
)
async def create_voucher(request: web.Request, body: VoucherIn) -> VoucherOut:
    """For the shop's team: a percentage (rounded down to the VND, capped by
    `max_discount`) or a fixed amount off the shop's order, from `min_order` up, valid
    between `starts_at` and `ends_at`; `total` can be claimed, `per_buyer_limit` each,
    in a live drop. With `live_session_id`, only for what is bought in that session."""
    principal = await require_principal(request)
    voucher = await request.app[VOUCHERS].create(principal, request.match_info["shop_id"], body)
    return voucher_out(voucher)


@routes.route(
    "GET",
    "/api/shops/{shop_id}/vouchers",
    summary="A shop's vouchers",
    tags=TAGS,
    response=VoucherList,
    auth=True,
    errors=(403, 404),
)
async def list_vouchers(request: web.Request) -> VoucherList:
    """Newest first, with how many were claimed and used."""
    principal = await require_principal(request)
    vouchers = await request.app[VOUCHERS].of_shop(principal, request.match_info["shop_id"])
    return VoucherList(items=[voucher_out(v) for v in vouchers])


@routes.route(
    "GET",
    "/api/vouchers/{voucher_id}",
    summary="One voucher",
    tags=TAGS,
    response=VoucherOut,
    auth=True,
    errors=(403, 404),
)
async def get_voucher(request: web.Request) -> VoucherOut:
    principal = await require_principal(request)
    return voucher_out(await request.app[VOUCHERS].get(principal, request.match_info["voucher_id"]))


@routes.route(
    "PATCH",
    "/api/vouchers/{voucher_id}",
    summary="Withdraw a voucher",
    tags=TAGS,
    body=VoucherPatch,
    response=VoucherOut,
    auth=True,
    errors=(403, 404),
)
async def patch_voucher(request: web.Request, body: VoucherPatch) -> VoucherOut:
    """`{"disabled": true}`: no more claims, and claims held cannot be spent."""
    principal = await require_principal(request)
    voucher = await request.app[VOUCHERS].disable(principal, request.match_info["voucher_id"])
    return voucher_out(voucher)


@routes.route(
    "GET",
    "/api/me/vouchers",
    summary="Vouchers you hold",
    tags=TAGS,
    response=ClaimedVoucherList,
    auth=True,
)
async def my_vouchers(request: web.Request) -> ClaimedVoucherList:
    """Claimed, not spent, still valid: pass `claim_id` as `voucher_claim_id` at checkout."""
    principal = await require_principal(request)
    held = await request.app[VOUCHERS].held_by(principal.user_id)
    return ClaimedVoucherList(
        items=[
            ClaimedVoucherOut(claim_id=c.id, claimed_at=c.claimed_at, voucher=voucher_out(v))
            for c, v in held
        ]
    )
