"""Notification endpoints: the in-app inbox and the per-kind channel preferences."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from commerce.accounts.auth import require_principal
from commerce.notifications.kinds import Choice
from commerce.notifications.preferences import Preferences
from commerce.notifications.schemas import (
    ChoiceIO,
    NotificationOut,
    NotificationPage,
    PreferencesIO,
)
from commerce.notifications.service import NotificationService
from storage.web import ApiRoutes
from storage.web.pagination import PageQuery, encode_cursor

routes = ApiRoutes()
NOTIFICATIONS = web.AppKey("notifications", NotificationService)
PREFERENCES = web.AppKey("notification_preferences", Preferences)
TAGS = ("notifications",)


@routes.route(
    "GET",
    "/api/notifications",
    summary="My notifications, newest first, with the unread count",
    tags=TAGS,
    query=PageQuery,
    response=NotificationPage,
    auth=True,
)
async def list_notifications(request: web.Request, query: PageQuery) -> NotificationPage:
    """New ones also arrive live on the user's sockets as `notification:new`."""
    principal = await require_principal(request)
    service = request.app[NOTIFICATIONS]
    docs, last = await service.page(principal.user_id, query.limit, query.cursor)
    return NotificationPage(
        items=[NotificationOut.model_validate(doc) for doc in docs],
        next_cursor=None if last is None else encode_cursor(last),
        unread_count=await service.unread_count(principal.user_id),
    )


@routes.route(
    "POST",
    "/api/notifications/{id}/read",
    summary="Mark one notification read",
    tags=TAGS,
    response=NotificationOut,
    auth=True,
    errors=(404,),
)
async def read_notification(request: web.Request) -> NotificationOut:
    """Idempotent: reading it again keeps the first `read_at`. 404
    `notification-not-found` for someone else's notification."""
    principal = await require_principal(request)
    doc = await request.app[NOTIFICATIONS].mark_read(principal.user_id, request.match_info["id"])
    return NotificationOut.model_validate(doc)


@routes.route(
    "POST",
    "/api/notifications/read-all",
    summary="Mark all my notifications read",
    tags=TAGS,
    status=204,
    auth=True,
)
async def read_all_notifications(request: web.Request) -> None:
    principal = await require_principal(request)
    await request.app[NOTIFICATIONS].mark_all_read(principal.user_id)


@routes.route(
    "GET",
    "/api/me/notification-preferences",
    summary="My channels per notification kind",
    tags=TAGS,
    response=PreferencesIO,
    auth=True,
)
async def get_preferences(request: web.Request) -> PreferencesIO:
    """Every kind. Defaults: in-app and push on; email on for order and payment kinds."""
    principal = await require_principal(request)
    return _out(await request.app[PREFERENCES].of(principal.user_id))


@routes.route(
    "PUT",
    "/api/me/notification-preferences",
    summary="Choose channels per notification kind",
    tags=TAGS,
    body=PreferencesIO,
    response=PreferencesIO,
    auth=True,
)
async def put_preferences(request: web.Request, body: PreferencesIO) -> PreferencesIO:
    """Kinds left out keep their current choice; the answer lists every kind."""
    principal = await require_principal(request)
    choices = {kind: Choice(**c.model_dump()) for kind, c in body.preferences.items()}
    return _out(await request.app[PREFERENCES].change(principal.user_id, choices))


def _out(choices: dict[str, Choice]) -> PreferencesIO:
    return PreferencesIO(
        preferences={kind: ChoiceIO(**asdict(choice)) for kind, choice in choices.items()}
    )
