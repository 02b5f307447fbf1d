"""A user's own account under /api/auth: profile, password, reset, email verification."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from commerce.accounts.routes import user_out
from commerce.accounts.schemas import (
    AcceptedOut,
    CodeIn,
    PasswordChangeIn,
    ProfileIn,
    ResetConfirmIn,
    ResetRequestIn,
    UserOut,
)
from commerce.accounts.self_service import AccountSelfService
from commerce.accounts.throttle import LoginThrottle
from commerce.accounts.tokens import Principal
from storage.web import ApiRoutes

SELF_SERVICE = web.AppKey("account_self_service", AccountSelfService)
EDIT_THROTTLE = web.AppKey("account_edit_throttle", LoginThrottle)
routes = ApiRoutes()
TAGS = ("auth",)
RESET_ACCEPTED = AcceptedOut(
    detail="If an account has this address, a reset token is on its way to it."
)
CODE_ACCEPTED = AcceptedOut(detail="If the address is not verified yet, a code is on its way.")


async def edit_allowed(request: web.Request) -> Principal:
    """The caller, after counting an edit of their profile or addresses against the
    edit limit (looser than the one on secrets and mail)."""
    principal = await require_principal(request)
    await request.app[EDIT_THROTTLE].attempt(principal.user_id, request.remote or "")
    return principal


@routes.route(
    "PATCH",
    "/api/auth/me",
    summary="Change your display name, avatar or language",
    tags=TAGS,
    body=ProfileIn,
    response=UserOut,
    auth=True,
    errors=(429,),
)
async def update_me(request: web.Request, body: ProfileIn) -> UserOut:
    principal = await edit_allowed(request)
    values = body.model_dump(mode="json", exclude_unset=True)
    return user_out(await request.app[SELF_SERVICE].update_profile(principal.user_id, values))


@routes.route(
    "POST",
    "/api/auth/me/password",
    summary="Change your password",
    tags=TAGS,
    body=PasswordChangeIn,
    status=204,
    auth=True,
    errors=(403, 429),
)
async def change_password(request: web.Request, body: PasswordChangeIn) -> None:
    """Needs the current password. Every other login of the account ends (its refresh
    tokens and access tokens stop working); this one stays signed in."""
    principal = await require_principal(request)
    await request.app[SELF_SERVICE].change_password(
        principal, body.current_password, body.new_password, request.remote or ""
    )


@routes.route(
    "POST",
    "/api/auth/password-reset",
    summary="Mail a password-reset token",
    tags=TAGS,
    body=ResetRequestIn,
    response=AcceptedOut,
    status=202,
    errors=(429,),
)
async def request_reset(request: web.Request, body: ResetRequestIn) -> AcceptedOut:
    """Always 202 with the same body, whether or not the address has an account. The
    token is good once, for 30 minutes; asking again voids the earlier one."""
    await request.app[SELF_SERVICE].request_reset(body.email, request.remote or "")
    return RESET_ACCEPTED


@routes.route(
    "POST",
    "/api/auth/password-reset/confirm",
    summary="Choose a new password with a reset token",
    tags=TAGS,
    body=ResetConfirmIn,
    status=204,
    errors=(400, 429),
)
async def confirm_reset(request: web.Request, body: ResetConfirmIn) -> None:
    """Every login of the account ends; log in with the new password."""
    await request.app[SELF_SERVICE].confirm_reset(
        body.token, body.new_password, request.remote or ""
    )


@routes.route(
    "POST",
    "/api/auth/me/email-verification",
    summary="Mail a six-digit code to verify your email",
    tags=TAGS,
    response=AcceptedOut,
    status=202,
    auth=True,
    errors=(429,),
)
async def send_code(request: web.Request) -> AcceptedOut:
    """The code is good once, for 10 minutes and 5 guesses; asking again voids it."""
    principal = await require_principal(request)
    await request.app[SELF_SERVICE].send_verification(principal, request.remote or "")
    return CODE_ACCEPTED


@routes.route(
    "POST",
    "/api/auth/me/email-verification/confirm",
    summary="Verify your email with the code",
    tags=TAGS,
    body=CodeIn,
    response=UserOut,
    auth=True,
    errors=(400, 429),
)
async def confirm_code(request: web.Request, body: CodeIn) -> UserOut:
    principal = await require_principal(request)
    user = await request.app[SELF_SERVICE].confirm_verification(
        principal, body.code, request.remote or ""
    )
    return user_out(user)
