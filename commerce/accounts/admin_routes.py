"""Admin endpoints on accounts under /api/users."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import ACCOUNTS, require_principal
from commerce.accounts.models import Role
from commerce.accounts.routes import user_out
from commerce.accounts.schemas import UserOut
from storage.web import ApiRoutes

routes = ApiRoutes()
TAGS = ("users",)


@routes.route(
    "POST",
    "/api/users/{id}/disable",
    summary="Disable an account (admins)",
    tags=TAGS,
    response=UserOut,
    auth=True,
    errors=(403, 404, 409),
)
async def disable_user(request: web.Request) -> UserOut:
    """The user can no longer log in, and every login they hold ends: access tokens are
    refused with 401 on every route (on this replica at once, on others within a
    second), refresh tokens are revoked and their Socket.IO connections are closed.
    The change is recorded in the account audit trail. Idempotent."""
    return await _set_active(request, active=False)


@routes.route(
    "POST",
    "/api/users/{id}/enable",
    summary="Enable a disabled account (admins)",
    tags=TAGS,
    response=UserOut,
    auth=True,
    errors=(403, 404),
)
async def enable_user(request: web.Request) -> UserOut:
    """The user may log in again; tokens from before the disabling stay refused.
    Recorded in the account audit trail. Idempotent."""
    return await _set_active(request, active=True)


async def _set_active(request: web.Request, active: bool) -> UserOut:
    principal = await require_principal(request, Role.ADMIN)
    user = await request.app[ACCOUNTS].set_active(principal, request.match_info["id"], active)
    return user_out(user)
