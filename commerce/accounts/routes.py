"""Auth endpoints under /api/auth."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import ACCOUNTS, require_principal
from commerce.accounts.models import Role, User
from commerce.accounts.schemas import (
    LoginIn,
    LogoutIn,
    RefreshIn,
    RegisterIn,
    TokensOut,
    UserOut,
)
from commerce.accounts.service import ACCOUNT_GONE, TokenPair
from storage.web import ApiRoutes

routes = ApiRoutes()
TAGS = ("auth",)


def user_out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


def tokens_out(user: User, pair: TokenPair) -> TokensOut:
    return TokensOut(
        access_token=pair.access_token,
        expires_at=pair.access_expires_at,
        refresh_token=pair.refresh_token,
        refresh_expires_at=pair.refresh_expires_at,
        user=user_out(user),
    )


@routes.route(
    "POST",
    "/api/auth/register",
    summary="Create a buyer or seller account",
    tags=TAGS,
    body=RegisterIn,
    response=UserOut,
    status=201,
    errors=(409,),
)
async def register(request: web.Request, body: RegisterIn) -> UserOut:
    user = await request.app[ACCOUNTS].register(
        body.email, body.password, body.display_name, Role(body.role)
    )
    return user_out(user)


@routes.route(
    "POST",
    "/api/auth/login",
    summary="Log in with email and password",
    tags=TAGS,
    body=LoginIn,
    response=TokensOut,
    errors=(401, 429, 503),
)
async def login(request: web.Request, body: LoginIn) -> TokensOut:
    """Wrong email and wrong password give the same 401. Repeated failures per
    account or per client IP are refused with 429 and Retry-After."""
    user, pair = await request.app[ACCOUNTS].login(body.email, body.password, request.remote or "")
    return tokens_out(user, pair)


@routes.route(
    "POST",
    "/api/auth/refresh",
    summary="Exchange a refresh token for new tokens",
    tags=TAGS,
    body=RefreshIn,
    response=TokensOut,
    errors=(401,),
)
async def refresh(request: web.Request, body: RefreshIn) -> TokensOut:
    """The refresh token is single-use. Presenting one that was already used revokes
    every token of that login, so a stolen token stops working for both parties."""
    user, pair = await request.app[ACCOUNTS].refresh(body.refresh_token)
    return tokens_out(user, pair)


@routes.route(
    "POST",
    "/api/auth/logout",
    summary="End this login",
    tags=TAGS,
    body=LogoutIn,
    status=204,
    auth=True,
)
async def logout(request: web.Request, body: LogoutIn) -> None:
    principal = await require_principal(request)
    await request.app[ACCOUNTS].logout(principal, body.refresh_token)


@routes.route(
    "GET", "/api/auth/me", summary="The calling user", tags=TAGS, response=UserOut, auth=True
)
async def me(request: web.Request) -> UserOut:
    principal = await require_principal(request)
    user = await request.app[ACCOUNTS].get_user(principal.user_id)
    if user is None or not user.is_active:
        raise ACCOUNT_GONE
    return user_out(user)
