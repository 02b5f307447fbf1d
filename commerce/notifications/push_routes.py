"""Web push endpoints: browsers subscribe and unsubscribe, and learn the server's key."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from commerce.notifications.push import PushChannel
from commerce.notifications.push_schemas import (
    PushEndpointIn,
    PushSubscriptionIn,
    PushSubscriptionOut,
    VapidPublicKeyOut,
)
from commerce.notifications.push_subscriptions import PushSubscriptions
from commerce.notifications.vapid import VapidSigner
from storage.web import ApiRoutes, Problem

routes = ApiRoutes()
PUSH_SUBSCRIPTIONS = web.AppKey("push_subscriptions", PushSubscriptions)
VAPID = web.AppKey("vapid", VapidSigner)
PUSH = web.AppKey("push", PushChannel)
TAGS = ("notifications",)
PUSH_OFF = Problem(404, "web-push-off", "Web push is not configured on this server.")


def _vapid(request: web.Request) -> VapidSigner:
    vapid = request.app.get(VAPID)
    if vapid is None:
        raise PUSH_OFF
    return vapid


@routes.route(
    "GET",
    "/api/webpush/vapid-public-key",
    summary="The key browsers subscribe with",
    tags=TAGS,
    response=VapidPublicKeyOut,
    errors=(404,),
    reaches_backends=False,
)
async def vapid_public_key(request: web.Request) -> VapidPublicKeyOut:
    """Pass it as `applicationServerKey` to `pushManager.subscribe`. 404 `web-push-off`
    when STREAMCART_VAPID_SUBJECT is not set."""
    return VapidPublicKeyOut(public_key=_vapid(request).public_key)


@routes.route(
    "POST",
    "/api/me/push-subscriptions",
    summary="Send my notifications to this browser",
    tags=TAGS,
    body=PushSubscriptionIn,
    response=PushSubscriptionOut,
    status=201,
    auth=True,
    errors=(404,),
)
async def subscribe(request: web.Request, body: PushSubscriptionIn) -> PushSubscriptionOut:
    """The body is the browser's `PushSubscription.toJSON()`. Subscribing the same
    endpoint again replaces its keys and its owner (the last user signed in on that
    browser). 422 `unsafe-push-endpoint` unless the endpoint is an https:// URL on a
    public host; 404 `web-push-off` when web push is not configured."""
    _vapid(request)
    principal = await require_principal(request)
    subscription = await request.app[PUSH_SUBSCRIPTIONS].subscribe(
        principal.user_id, body.endpoint, body.keys.p256dh, body.keys.auth
    )
    return PushSubscriptionOut.model_validate(subscription, from_attributes=True)


@routes.route(
    "DELETE",
    "/api/me/push-subscriptions",
    summary="Stop sending my notifications to this browser",
    tags=TAGS,
    body=PushEndpointIn,
    status=204,
    auth=True,
)
async def unsubscribe(request: web.Request, body: PushEndpointIn) -> None:
    """By endpoint. Idempotent; an endpoint of another user's is left alone."""
    principal = await require_principal(request)
    await request.app[PUSH_SUBSCRIPTIONS].unsubscribe(principal.user_id, body.endpoint)
