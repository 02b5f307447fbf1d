"""Auction endpoints: started under a live session, then addressed by their own id."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import optional_principal, require_principal
from live.auctions.models import Ending
from live.auctions.schemas import (
    AuctionDetail,
    AuctionIn,
    AuctionOut,
    AuctionPage,
    BidIn,
    BidOut,
    RunnerUpOut,
)
from live.auctions.service import AuctionService, NewAuction
from storage.web import BEARER, ApiRoutes
from storage.web.pagination import PageQuery

routes = ApiRoutes()
AUCTIONS = web.AppKey("auctions", AuctionService)
TAGS = ("auctions",)
IN_SESSION = "/api/live-sessions/{live_session_id}/auctions"
ONE = "/api/auctions/{auction_id}"


@routes.route(
    "POST",
    IN_SESSION,
    summary="Start an auction",
    tags=TAGS,
    body=AuctionIn,
    response=AuctionOut,
    status=201,
    auth=True,
    errors=(403, 404, 409, 422),
)
async def start_auction(request: web.Request, body: AuctionIn) -> AuctionOut:
    """For the shop's team, while the session is live, for a product on show: bidding
    opens at once and ends after `duration_seconds` (anti-sniping may move the end).
    One running auction per product (409 `auction-running`); 409
    `live-session-not-live`; 422 `reserve-below-start` or `buy-now-too-low`."""
    principal = await require_principal(request)
    new = NewAuction(
        product_id=body.product_id,
        variant_id=body.variant_id,
        starting_price=body.starting_price,
        min_increment=body.min_increment,
        duration_seconds=body.duration_seconds,
        ending=Ending(body.ending),
        extend_seconds=body.extend_seconds,
        reserve_price=body.reserve_price,
        buy_now_price=body.buy_now_price,
    )
    started = await request.app[AUCTIONS].open(
        principal, request.match_info["live_session_id"], new
    )
    return AuctionOut.model_validate(started)


@routes.route(
    "GET",
    IN_SESSION,
    summary="A session's auctions",
    tags=TAGS,
    query=PageQuery,
    response=AuctionPage,
    errors=(404,),
)
async def list_auctions(request: web.Request, query: PageQuery) -> AuctionPage:
    """Newest first."""
    auctions, cursor = await request.app[AUCTIONS].list(
        request.match_info["live_session_id"], query
    )
    return AuctionPage(items=[AuctionOut.model_validate(a) for a in auctions], next_cursor=cursor)


@routes.route("GET", ONE, summary="An auction", tags=TAGS, response=AuctionDetail, errors=(404,))
async def get_auction(request: web.Request) -> AuctionDetail:
    """With its accepted bids, highest first."""
    return AuctionDetail.model_validate(
        await request.app[AUCTIONS].get(request.match_info["auction_id"])
    )


@routes.route(
    "POST",
    ONE + "/bids",
    summary="Bid in an auction",
    tags=TAGS,
    body=BidIn,
    response=BidOut,
    status=201,
    security=BEARER,
    errors=(401, 403, 404, 409),
)
async def place_bid(request: web.Request, body: BidIn) -> BidOut:
    """Signed-in viewers only (401 `auth-required`); not the shop's team (403
    `own-shop-bid`). 409 `bid-too-low` (with `minimum`), `auction-ended` or
    `auction-cancelled`. A bid at or above the buy-it-now price buys it at that price
    and ends the auction."""
    principal = await optional_principal(request)
    bid = await request.app[AUCTIONS].bid(principal, request.match_info["auction_id"], body.amount)
    return BidOut.model_validate(bid, from_attributes=True)


@routes.route(
    "POST",
    ONE + "/cancel",
    summary="Cancel an auction",
    tags=TAGS,
    response=AuctionOut,
    auth=True,
    errors=(403, 404, 409),
)
async def cancel_auction(request: web.Request) -> AuctionOut:
    """For the shop's team, before the first bid (409 `auction-not-cancellable`)."""
    principal = await require_principal(request)
    cancelled = await request.app[AUCTIONS].cancel(principal, request.match_info["auction_id"])
    return AuctionOut.model_validate(cancelled)


@routes.route(
    "POST",
    ONE + "/offer-runner-up",
    summary="Offer an auction to the runner-up",
    tags=TAGS,
    response=RunnerUpOut,
    status=201,
    auth=True,
    errors=(403, 404, 409),
)
async def offer_runner_up(request: web.Request) -> RunnerUpOut:
    """For the shop's team, once the winner's order was cancelled or expired unpaid: an
    order for the highest other bidder at their highest bid, with the usual payment
    deadline. Once per auction (409 `runner-up-offered`); 409 `winner-order-open`,
    `no-runner-up`."""
    principal = await require_principal(request)
    offered = await request.app[AUCTIONS].offer_runner_up(
        principal, request.match_info["auction_id"]
    )
    return RunnerUpOut.model_validate(offered)
