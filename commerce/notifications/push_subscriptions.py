"""Which browsers get a user's notifications: subscriptions kept by endpoint.

Push services hand browsers `https:` endpoints on public hosts; an endpoint that names
a private or loopback address would make this server post to its own network, so
those are refused (loopback `http:` only when a test plays the push service). A name
is checked again where it resolves, when the channel connects (`PublicResolver`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.notifications.push_models import PushSubscription
from storage.ids import new_id
from storage.web import Problem

log = logging.getLogger("streamcart.notifications.push")

UNSAFE_ENDPOINT = "unsafe-push-endpoint"
ATTEMPTS = 3


class PushSubscriptions:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], allow_loopback_http: bool = False
    ) -> None:
        self._sessions = sessions
        self._allow_loopback_http = allow_loopback_http

    async def subscribe(
        self, user_id: str, endpoint: str, p256dh: str, auth: str
    ) -> PushSubscription:
        """Keep the subscription for the user; the same endpoint again (the browser
        renewed its keys, or another user signed in on it) replaces the old one."""
        self._check_endpoint(endpoint)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._sessions.begin() as session:
                    await session.execute(
                        delete(PushSubscription).where(PushSubscription.endpoint == endpoint)
                    )
                    subscription = PushSubscription(
                        id=new_id(),
                        user_id=user_id,
                        endpoint=endpoint,
                        p256dh=p256dh,
                        auth=auth,
                        created_at=datetime.now(UTC),
                    )
                    session.add(subscription)
            except IntegrityError:  # the same browser subscribed twice at once: try again
                if attempt == ATTEMPTS:
                    raise
                continue
            log.info("push subscription added", extra={"user_id": user_id})
            return subscription
        raise AssertionError("unreachable")

    async def unsubscribe(self, user_id: str, endpoint: str) -> None:
        """Idempotent; another user's subscription is left alone."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(PushSubscription).where(
                    PushSubscription.endpoint == endpoint, PushSubscription.user_id == user_id
                )
            )

    async def of_user(self, user_id: str) -> list[PushSubscription]:
        async with self._sessions() as session:
            query = select(PushSubscription).where(PushSubscription.user_id == user_id)
            return list((await session.scalars(query)).all())

    async def drop(self, subscription_id: str) -> None:
        """The push service said the subscription is gone (404 or 410)."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(PushSubscription).where(PushSubscription.id == subscription_id)
            )
        log.info("push subscription expired", extra={"subscription_id": subscription_id})

    def _check_endpoint(self, endpoint: str) -> None:
        try:
            url = urlsplit(endpoint)
            host = (url.hostname or "").lower()
        except ValueError:  # a malformed IPv6 host, say
            raise Problem(422, UNSAFE_ENDPOINT, "A push endpoint is an https:// URL.") from None
        ip = _ip(host)
        loopback = host == "localhost" or (ip is not None and ip.is_loopback)
        if url.scheme == "http" and loopback and self._allow_loopback_http:
            return
        if url.scheme != "https" or not host:
            raise Problem(422, UNSAFE_ENDPOINT, "A push endpoint is an https:// URL.")
        if host == "localhost" or (ip is not None and not reachable(ip, allow_loopback=False)):
            raise Problem(422, UNSAFE_ENDPOINT, "A push endpoint is on a public host.")


class PublicResolver(AbstractResolver):
    """Resolves push services' names to public addresses only, so a name that leads
    into this server's own network is never posted to."""

    def __init__(self, allow_loopback: bool = False) -> None:
        self._resolver = ThreadedResolver()
        self._allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        public = [
            r for r in found if reachable(ipaddress.ip_address(r["host"]), self._allow_loopback)
        ]
        if not public:
            raise OSError(f"{host} has no public address")
        return public

    async def close(self) -> None:
        await self._resolver.close()


def reachable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    return ip.is_global or (allow_loopback and ip.is_loopback)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
