"""The composition root: builds the one aiohttp application from Settings."""

from __future__ import annotations

import logging

from aiohttp import web

import commerce.accounts.routes
from commerce.accounts.auth import ACCOUNTS
from commerce.accounts.service import AccountService
from commerce.accounts.throttle import LoginThrottle
from commerce.accounts.tokens import AccessTokens
from live.http import system
from live.http.metrics import METRICS, Metrics
from live.http.middleware import make_middlewares
from live.secrets_store import jwt_secret
from live.settings import Settings
from storage.backends import Backends, BackendUrls
from storage.web.openapi import build_spec

log = logging.getLogger("streamcart")
SETTINGS = web.AppKey("settings", Settings)

API_ROUTES = (system.routes, commerce.accounts.routes.routes)


def backend_urls(settings: Settings) -> BackendUrls:
    return BackendUrls(
        database=settings.effective_database_url,
        redis=settings.redis_url,
        amqp=settings.amqp_url,
        mongo=settings.mongo_url,
        mongo_database=settings.mongo_database,
    )


def build_accounts(settings: Settings, backends: Backends) -> AccountService:
    return AccountService(
        sessions=backends.sessions,
        cache=backends.cache,
        access_tokens=AccessTokens(
            jwt_secret(settings.jwt_secret, settings.data_dir), settings.access_token_ttl
        ),
        throttle=LoginThrottle(
            backends.cache,
            per_account=settings.login_max_failures_per_account,
            per_ip=settings.login_max_failures_per_ip,
            window_seconds=settings.login_failure_window,
        ),
        refresh_ttl_seconds=settings.refresh_token_ttl,
    )


def build_app(settings: Settings) -> web.Application:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    middlewares = make_middlewares(metrics)
    if settings.trust_forwarded:
        middlewares.insert(0, web.middleware(_forwarded_client_ip))
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    backends = Backends(backend_urls(settings))
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[system.BACKENDS] = backends
    app[ACCOUNTS] = build_accounts(settings, backends)
    for routes in API_ROUTES:
        routes.add_to(app)
    app[system.OPENAPI] = build_spec(
        (op for routes in API_ROUTES for op in routes.operations),
        title="Stream Cart API",
        version="0.1.0",
        description="Live commerce: accounts, catalog, carts, orders, Sepay payments, "
        "live sessions. Realtime events are documented in docs/realtime.md.",
    )
    system.add_docs_routes(app)
    app.cleanup_ctx.append(_run_backends)
    return app


async def _run_backends(app: web.Application):
    backends = app[system.BACKENDS]
    await backends.start()
    yield
    await backends.close()


async def _forwarded_client_ip(request: web.Request, handler):
    """Behind a trusted proxy, the client is the first address in X-Forwarded-For."""
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    if forwarded:
        request = request.clone(remote=forwarded)
    return await handler(request)
