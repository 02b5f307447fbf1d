"""Web push: each notification encrypted for each of the user's browsers (RFC 8291,
aes128gcm of RFC 8188) and posted to its push service with VAPID (RFC 8292).

`deliver` only schedules the sends, so neither a slow push service nor the retries hold
up the notification consumer. A subscription the push service no longer knows (404,
410) is deleted; other failures are retried with back-off, then given up (logged). Sends
waiting when the process stops are lost: a push is a nudge, the in-app notification is
the record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

import aiohttp
import orjson
from pywebpush import WebPusher

from commerce.notifications import kinds
from commerce.notifications.channels import Notification, Recipient
from commerce.notifications.push_models import PushSubscription
from commerce.notifications.push_subscriptions import PublicResolver, PushSubscriptions
from commerce.notifications.vapid import VapidSigner

log = logging.getLogger("streamcart.notifications.push")

GONE = (404, 410)
# How long a push service keeps a message for a browser that is offline, and whether it
# may wake a sleeping phone for it: a live or a flash sale starting is worth waking up
# for and worthless an hour later; order news keeps for a day and waits for the phone.
NOW_OR_NEVER = frozenset({kinds.SHOP_LIVE, kinds.FLASH_STARTED})
URGENT = (3600, "high")
ROUTINE = (24 * 3600, "normal")
RETRY_DELAYS = (1.0, 5.0, 30.0)
MAX_SENDING = 100  # simultaneous posts to push services
# RFC 8291 leaves 3993 bytes of plain text in one 4096-byte record; the body is cut to fit.
MAX_PAYLOAD = 3993


class PushChannel:
    def __init__(
        self,
        subscriptions: PushSubscriptions,
        vapid: VapidSigner,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        timeout: float = 10.0,
        allow_loopback: bool = False,
    ) -> None:
        self._subscriptions = subscriptions
        self._vapid = vapid
        self._retry_delays = tuple(retry_delays)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sending = asyncio.Semaphore(MAX_SENDING)
        self._tasks: set[asyncio.Task] = set()
        self._http: aiohttp.ClientSession | None = None
        self._allow_loopback = allow_loopback

    async def deliver(self, user: Recipient, notification: Notification) -> None:
        self._spawn(self._deliver(user.id, notification))

    async def idle(self) -> None:
        """Wait until every scheduled send is done (sent, dropped or given up)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.idle()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _deliver(self, user_id: str, notification: Notification) -> None:
        payload = encode(notification)
        ttl, urgency = URGENT if notification.kind in NOW_OR_NEVER else ROUTINE
        try:
            subscriptions = await self._subscriptions.of_user(user_id)
        except Exception:
            log.exception("web push skipped", extra={"notification_id": notification.id})
            return
        for subscription in subscriptions:
            self._spawn(self._send(subscription, payload, ttl, urgency))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, subscription: PushSubscription, payload: bytes, ttl: int, urgency: str
    ) -> None:
        for attempt, delay in enumerate((*self._retry_delays, None), start=1):
            try:
                async with self._sending:
                    status = await self._post(subscription, payload, ttl, urgency)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, reason = None, repr(exc)
            else:
                reason = f"HTTP {status}"
                if status < 300:
                    return
                if status in GONE:
                    await self._subscriptions.drop(subscription.id)
                    return
            extra = {"subscription_id": subscription.id, "attempt": attempt, "reason": reason}
            if delay is None or not retryable(status):
                log.warning("web push given up", extra=extra)
                return
            log.info("web push failed, retrying", extra=extra)
            await asyncio.sleep(delay)

    async def _post(
        self, subscription: PushSubscription, payload: bytes, ttl: int, urgency: str
    ) -> int:
        """The library encrypts; the post is ours, so it goes only to public addresses
        and never follows a redirect."""
        keys = {"p256dh": subscription.p256dh, "auth": subscription.auth}
        body = WebPusher({"endpoint": subscription.endpoint, "keys": keys}).encode(payload)["body"]
        headers = {
            "Authorization": self._vapid.authorization(subscription.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(ttl),
            "Urgency": urgency,
        }
        if self._http is None:
            resolver = PublicResolver(self._allow_loopback)
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver), timeout=self._timeout
            )
        async with self._http.post(
            subscription.endpoint, data=body, headers=headers, allow_redirects=False
        ) as response:
            await response.read()
            return response.status


def retryable(status: int | None) -> bool:
    """A network failure, an overloaded (429) or failing (5xx) push service may pass;
    any other refusal (400 bad request, 413 too large) would be the same again."""
    return status is None or status == 429 or status >= 500


def encode(notification: Notification) -> bytes:
    """What the service worker receives: the notification as the REST API lists it,
    its body shortened when the whole would not fit one push message."""
    document = notification.to_document()
    payload = orjson.dumps(document)
    while len(payload) > MAX_PAYLOAD and document["body"]:
        body = document["body"].encode()
        keep = max(0, len(body) - (len(payload) - MAX_PAYLOAD))
        document["body"] = body[:keep].decode(errors="ignore")  # no half character
        payload = orjson.dumps(document)
    return payload
