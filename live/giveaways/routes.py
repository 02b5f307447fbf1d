"""Giveaway endpoints: started under a live session, then addressed by their own id."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.address_routes import ADDRESSES
from commerce.accounts.auth import require_principal
from commerce.orders.routes import ORDERS, order_out
from commerce.orders.schemas import OrderOut
from commerce.payments.routes import BANK
from live.giveaways.models import EntryMode
from live.giveaways.prizes import PrizeClaims
from live.giveaways.schemas import (
    ClaimPrizeIn,
    EnteredOut,
    GiveawayIn,
    GiveawayOut,
    GiveawayPage,
    GiveawayRecordOut,
)
from live.giveaways.service import GiveawayService
from storage.web import ApiRoutes
from storage.web.pagination import PageQuery

routes = ApiRoutes()
GIVEAWAYS = web.AppKey("giveaways", GiveawayService)
PRIZES = web.AppKey("giveaway_prizes", PrizeClaims)
TAGS = ("giveaways",)
IN_SESSION = "/api/live-sessions/{live_session_id}/giveaways"
ONE = "/api/giveaways/{giveaway_id}"


@routes.route(
    "POST",
    IN_SESSION,
    summary="Start a giveaway",
    tags=TAGS,
    body=GiveawayIn,
    response=GiveawayOut,
    status=201,
    auth=True,
    errors=(403, 404, 409, 422),
)
async def start_giveaway(request: web.Request, body: GiveawayIn) -> GiveawayOut:
    """For the shop's team, while the session is live (409 `live-session-not-live`):
    `winners` units of a product of the shop (409 `not-enough-stock`), entries open for
    `duration_seconds`. The seed's SHA-256 is published now, the seed at the draw."""
    principal = await require_principal(request)
    started = await request.app[GIVEAWAYS].start(
        principal,
        request.match_info["live_session_id"],
        body.product_id,
        body.variant_id,
        body.winners,
        EntryMode(body.entry_mode),
        body.keyword,
        body.duration_seconds,
    )
    return GiveawayOut.model_validate({**started, "entries_count": 0})


@routes.route(
    "GET",
    IN_SESSION,
    summary="A session's giveaways",
    tags=TAGS,
    query=PageQuery,
    response=GiveawayPage,
    errors=(404,),
)
async def list_giveaways(request: web.Request, query: PageQuery) -> GiveawayPage:
    """Newest first, without their entries."""
    giveaways, cursor = await request.app[GIVEAWAYS].list(
        request.match_info["live_session_id"], query
    )
    return GiveawayPage(
        items=[GiveawayOut.model_validate(g) for g in giveaways], next_cursor=cursor
    )


@routes.route(
    "GET",
    ONE,
    summary="A giveaway's public record",
    tags=TAGS,
    response=GiveawayRecordOut,
    errors=(404,),
)
async def get_giveaway(request: web.Request) -> GiveawayRecordOut:
    """Every entry, the seed commitment and, once drawn, the seed and the winners:
    docs/giveaways.md has a script that recomputes the winners from this."""
    record = await request.app[GIVEAWAYS].record(request.match_info["giveaway_id"])
    return GiveawayRecordOut.model_validate(record)


@routes.route(
    "POST",
    ONE + "/enter",
    summary="Enter a giveaway",
    tags=TAGS,
    response=EnteredOut,
    auth=True,
    errors=(403, 404, 409),
)
async def enter_giveaway(request: web.Request) -> EnteredOut:
    """The button, for giveaways in `button` and `followers` mode (409 `enter-by-keyword`
    otherwise). 403 `staff-cannot-enter` for the shop's team, `followers-only` for a
    non-follower in `followers` mode; 409 `giveaway-closed` once entries closed.
    Entering again is no error and counts once."""
    principal = await require_principal(request)
    entered = await request.app[GIVEAWAYS].enter(principal, request.match_info["giveaway_id"])
    return EnteredOut.model_validate(entered)


@routes.route(
    "POST",
    ONE + "/claim-prize",
    summary="Claim a giveaway prize",
    tags=TAGS,
    body=ClaimPrizeIn,
    response=OrderOut,
    auth=True,
    errors=(403, 404, 409, 422),
)
async def claim_prize(request: web.Request, body: ClaimPrizeIn) -> OrderOut:
    """For a winner: ships the prize's zero-price order to one of their saved addresses
    and marks it paid, so the shop fulfils it. 403 `not-a-winner`; 409
    `giveaway-not-drawn`, `prize-already-claimed`, `prize-expired` (not claimed within
    24 hours) or `prize-unavailable` (its stock ran out before the draw)."""
    principal = await require_principal(request)
    address = await request.app[ADDRESSES].shipping_text(principal.user_id, body.address_id)
    order_id = await request.app[PRIZES].claim(
        principal, request.match_info["giveaway_id"], address
    )
    view = await request.app[ORDERS].get(principal, order_id)
    return order_out(view, request.app[BANK])


@routes.route(
    "POST",
    ONE + "/cancel",
    summary="Cancel a giveaway",
    tags=TAGS,
    response=GiveawayOut,
    auth=True,
    errors=(403, 404, 409),
)
async def cancel_giveaway(request: web.Request) -> GiveawayOut:
    """For the shop's team, before the draw (409 `giveaway-not-open`); the seed is not
    revealed."""
    principal = await require_principal(request)
    giveaway_id = request.match_info["giveaway_id"]
    await request.app[GIVEAWAYS].cancel(principal, giveaway_id)
    return GiveawayOut.model_validate(await request.app[GIVEAWAYS].record(giveaway_id))
