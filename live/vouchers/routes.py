"""Voucher drops under /api/live-sessions/{live_session_id}/vouchers."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from live.vouchers.schemas import DropIn, VoucherClaimOut, VoucherDropList, VoucherDropOut
from live.vouchers.service import VoucherDrops
from storage.web import ApiRoutes

routes = ApiRoutes()
VOUCHER_DROPS = web.AppKey("voucher_drops", VoucherDrops)
TAGS = ("vouchers",)
SESSION_VOUCHERS = "/api/live-sessions/{live_session_id}/vouchers"
BASE = SESSION_VOUCHERS + "/{voucher_id}"


@routes.route(
    "GET",
    SESSION_VOUCHERS,
    summary="Vouchers dropped in a live session",
    tags=TAGS,
    response=VoucherDropList,
    errors=(404,),
)
async def list_drops(request: web.Request) -> VoucherDropList:
    """Newest first, as `voucher:dropped` showed them, with what is left now and
    `claims_close_at`: for viewers who joined after a drop."""
    drops = await request.app[VOUCHER_DROPS].drops(request.match_info["live_session_id"])
    return VoucherDropList(items=[VoucherDropOut.model_validate(d) for d in drops])


@routes.route(
    "POST",
    BASE + "/drop",
    summary="Drop a voucher on air",
    tags=TAGS,
    body=DropIn,
    response=VoucherDropOut,
    status=201,
    auth=True,
    errors=(403, 404, 409),
)
async def drop_voucher(request: web.Request, body: DropIn) -> VoucherDropOut:
    """For the shop's team, in a session that is live: viewers may claim the voucher for
    `claim_seconds`, and the room hears `voucher:dropped`. A voucher is dropped once
    (409 `voucher-already-dropped`)."""
    principal = await require_principal(request)
    data = await request.app[VOUCHER_DROPS].drop(
        principal,
        request.match_info["live_session_id"],
        request.match_info["voucher_id"],
        body.claim_seconds,
    )
    return VoucherDropOut.model_validate(data)


@routes.route(
    "POST",
    BASE + "/claim",
    summary="Claim a dropped voucher",
    tags=TAGS,
    response=VoucherClaimOut,
    status=201,
    auth=True,
    errors=(403, 409),
)
async def claim_voucher(request: web.Request) -> VoucherClaimOut:
    """One per call, up to the voucher's per-buyer limit. 409 `voucher-not-dropped`,
    `voucher-claims-closed`, `voucher-all-claimed` or `voucher-limit-reached`; 403 for
    the shop's team."""
    principal = await require_principal(request)
    claimed = await request.app[VOUCHER_DROPS].claim(
        principal, request.match_info["live_session_id"], request.match_info["voucher_id"]
    )
    return VoucherClaimOut.model_validate(claimed)
