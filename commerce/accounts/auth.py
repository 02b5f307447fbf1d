"""Who is calling an HTTP endpoint: bearer-token authentication and role checks."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.service import AccountService
from commerce.accounts.tokens import InvalidToken, Principal
from storage.web import Problem

ACCOUNTS = web.AppKey("accounts", AccountService)
PRINCIPAL = web.RequestKey("principal", Principal)

UNAUTHENTICATED = {"WWW-Authenticate": 'Bearer realm="streamcart"'}


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(accounts: AccountService, token: str | None) -> Principal:
    """Verify an access token from any transport (HTTP header, Socket.IO auth, WHEP)."""
    if token is None:
        raise Problem(
            401,
            "unauthenticated",
            "Send 'Authorization: Bearer <access token>'.",
            headers=UNAUTHENTICATED,
        )
    try:
        return await accounts.authenticate(token)
    except InvalidToken:
        raise Problem(
            401, "invalid-token", "The access token is invalid or expired.", headers=UNAUTHENTICATED
        ) from None


async def bearer_guard(request: web.Request) -> None:
    """Route guard: 401 before any input is read; the principal is kept for the handler."""
    request[PRINCIPAL] = await authenticate(request.app[ACCOUNTS], bearer_token(request))


async def require_principal(request: web.Request, *roles: str) -> Principal:
    """The verified caller; 401 without a valid token, 403 when the role is not allowed."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        principal = await authenticate(request.app[ACCOUNTS], bearer_token(request))
    if roles and principal.role not in roles:
        raise Problem(
            403,
            "forbidden",
            f"This needs the role {' or '.join(roles)}; yours is {principal.role}.",
            required_roles=list(roles),
        )
    return principal


async def optional_principal(request: web.Request) -> Principal | None:
    """For public endpoints that show more to some callers: None when no token is sent,
    the caller when a valid one is, and still 401 for an invalid one (not silently anonymous)."""
    token = bearer_token(request)
    return None if token is None else await authenticate(request.app[ACCOUNTS], token)


async def signed_in_user_id(request: web.Request) -> str | None:
    """For endpoints open to all that only personalise what they give: the caller's user
    id with a valid token, None for a guest or a token that is not valid (never 401)."""
    token = bearer_token(request)
    if token is None:
        return None
    try:
        return (await authenticate(request.app[ACCOUNTS], token)).user_id
    except Problem:
        return None
