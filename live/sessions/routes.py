"""Live-session endpoints under /api/live-sessions."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from commerce.accounts.auth import require_principal
from live.sessions.models import LiveSession
from live.sessions.schemas import (
    CreatedLiveSessionOut,
    LiveSessionIn,
    LiveSessionOut,
    LiveSessionPage,
    LiveSessionQuery,
    ProductsIn,
    ShowcaseItemOut,
    StreamOut,
)
from live.sessions.service import LiveSessionService, NewProduct
from storage.web import ApiRoutes, Problem

routes = ApiRoutes()
LIVE_SESSIONS = web.AppKey("live_sessions", LiveSessionService)
# What OBS calls "Server", asked when needed: the RTMP port is known once it is bound.
RTMP_URL = web.AppKey("rtmp_url", Callable[[], str])
WHIP_URL = web.AppKey("whip_url", str)
TAGS = ("live sessions",)


def session_out(live: LiveSession, items: list[ShowcaseItemOut] | None = None) -> LiveSessionOut:
    out = LiveSessionOut.model_validate(live, from_attributes=True)
    out.products = items
    return out


def _products(body) -> list[NewProduct]:
    return [NewProduct(p.product_id, p.live_price, p.live_stock) for p in body.products]


@routes.route(
    "POST",
    "/api/live-sessions",
    summary="Schedule a live session",
    tags=TAGS,
    body=LiveSessionIn,
    response=CreatedLiveSessionOut,
    status=201,
    auth=True,
    errors=(403, 404, 409, 422),
)
async def create_live_session(request: web.Request, body: LiveSessionIn):
    """Returns the OBS server URL and a secret stream key, shown only in this answer.
    Each product is listed once: a product listed twice is refused (422
    `duplicate-product`), as its two entries could disagree on price or stock."""
    principal = await require_principal(request)
    service = request.app[LIVE_SESSIONS]
    live, key = await service.create(
        principal, body.shop_id, body.title, body.description, body.scheduled_at, _products(body)
    )
    out = session_out(live, await service.showcase(live.id))
    return CreatedLiveSessionOut(**out.model_dump(), stream=_stream(request, key))


@routes.route(
    "GET",
    "/api/live-sessions",
    summary="Live sessions",
    tags=TAGS,
    query=LiveSessionQuery,
    response=LiveSessionPage,
)
async def list_live_sessions(request: web.Request, query: LiveSessionQuery) -> LiveSessionPage:
    """Newest first; filter by status (scheduled, live, ended) and shop."""
    sessions, cursor = await request.app[LIVE_SESSIONS].list(query, query.status, query.shop_id)
    return LiveSessionPage(items=[session_out(s) for s in sessions], next_cursor=cursor)


@routes.route(
    "GET",
    "/api/live-sessions/{live_session_id}",
    summary="One live session",
    tags=TAGS,
    response=LiveSessionOut,
    errors=(404,),
)
async def get_live_session(request: web.Request) -> LiveSessionOut:
    """With the products on show, their live prices and what is left of each."""
    service = request.app[LIVE_SESSIONS]
    live = await service.get(request.match_info["live_session_id"])
    return session_out(live, await service.showcase(live.id))


@routes.route(
    "POST",
    "/api/live-sessions/{live_session_id}/start",
    summary="Go live now",
    tags=TAGS,
    response=LiveSessionOut,
    auth=True,
    errors=(403, 404, 409),
)
async def start_live_session(request: web.Request) -> LiveSessionOut:
    """Normally the session goes live when OBS starts publishing; this starts it by hand."""
    service, live = await _staff_session(request)
    if await service.go_live(live.id, "started by hand") is None:
        raise Problem(409, "not-scheduled", f"The session is {live.status}, not scheduled.")
    return session_out(await service.get(live.id))


@routes.route(
    "POST",
    "/api/live-sessions/{live_session_id}/end",
    summary="End the session",
    tags=TAGS,
    response=LiveSessionOut,
    auth=True,
    errors=(403, 404, 409),
)
async def end_live_session(request: web.Request) -> LiveSessionOut:
    service, live = await _staff_session(request)
    if await service.end(live.id, "ended by the shop") is None:
        raise Problem(409, "live-session-ended", "The session has already ended.")
    return session_out(await service.get(live.id))


@routes.route(
    "POST",
    "/api/live-sessions/{live_session_id}/stream-key/rotate",
    summary="Replace the stream key",
    tags=TAGS,
    response=StreamOut,
    auth=True,
    errors=(403, 404, 409),
)
async def rotate_stream_key(request: web.Request) -> StreamOut:
    """The old key stops working at once; OBS must be given the new one."""
    principal = await require_principal(request)
    key = await request.app[LIVE_SESSIONS].rotate_key(
        principal, request.match_info["live_session_id"]
    )
    return _stream(request, key)


def _stream(request: web.Request, key: str) -> StreamOut:
    """Where OBS sends the stream (RTMP or WHIP) and with which key."""
    return StreamOut(
        server_url=request.app[RTMP_URL](), whip_url=request.app[WHIP_URL], stream_key=key
    )


@routes.route(
    "POST",
    "/api/live-sessions/{live_session_id}/products",
    summary="Put products on show",
    tags=TAGS,
    body=ProductsIn,
    response=LiveSessionOut,
    auth=True,
    errors=(403, 404, 422),
)
async def add_products(request: web.Request, body: ProductsIn) -> LiveSessionOut:
    """Products already on show keep their price and stock. A product listed twice in
    the body is refused (422 `duplicate-product`): its entries could disagree."""
    principal = await require_principal(request)
    service = request.app[LIVE_SESSIONS]
    live_id = request.match_info["live_session_id"]
    await service.add_products(principal, live_id, _products(body))
    return session_out(await service.get(live_id), await service.showcase(live_id))


@routes.route(
    "DELETE",
    "/api/live-sessions/{live_session_id}/products/{product_id}",
    summary="Take a product off show",
    tags=TAGS,
    response=LiveSessionOut,
    auth=True,
    errors=(403, 404),
)
async def remove_product(request: web.Request) -> LiveSessionOut:
    principal = await require_principal(request)
    service = request.app[LIVE_SESSIONS]
    live_id = request.match_info["live_session_id"]
    await service.remove_product(principal, live_id, request.match_info["product_id"])
    return session_out(await service.get(live_id), await service.showcase(live_id))


async def _staff_session(request: web.Request):
    principal = await require_principal(request)
    service = request.app[LIVE_SESSIONS]
    return service, await service.require_staff(principal, request.match_info["live_session_id"])
