"""The owner's stats endpoint, next to the other live-session routes."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from live.analytics.schemas import LiveStatsOut
from live.analytics.service import LiveStatsService
from live.sessions.routes import TAGS
from storage.web import ApiRoutes

routes = ApiRoutes()
LIVE_STATS = web.AppKey("live_stats", LiveStatsService)


@routes.route(
    "GET",
    "/api/live-sessions/{live_session_id}/stats",
    summary="A live session's stats",
    tags=TAGS,
    response=LiveStatsOut,
    auth=True,
    errors=(403, 404),
)
async def live_session_stats(request: web.Request) -> LiveStatsOut:
    """Viewers (now, peak, unique, watch time), chat, orders and revenue, and per product
    its pins and what they sold; for the shop's team. See docs/live.md for definitions."""
    principal = await require_principal(request)
    return await request.app[LIVE_STATS].stats(principal, request.match_info["live_session_id"])
