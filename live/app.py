"""The composition root: builds the one aiohttp application from Settings."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from aiohttp import web

import commerce.accounts.admin_routes
import commerce.accounts.routes
import commerce.carts.routes
import commerce.catalog.routes
import commerce.orders.routes
import commerce.payments.routes
import commerce.shops.routes
from commerce.accounts.auth import ACCOUNTS, bearer_guard, signed_in_user_id
from commerce.accounts.passwords import Passwords
from commerce.accounts.service import AccountService
from commerce.accounts.throttle import LoginThrottle
from commerce.accounts.tokens import AccessTokens
from commerce.carts.routes import CARTS
from commerce.carts.service import CartService
from commerce.catalog.routes import CATALOG
from commerce.catalog.service import CatalogService
from commerce.orders.checkout import CheckoutService
from commerce.orders.express import ExpressCheckout
from commerce.orders.routes import CHECKOUT, ORDERS
from commerce.orders.service import OrderService
from commerce.orders.sweeper import ExpirySweeper
from commerce.payments.routes import BANK, SEPAY
from commerce.payments.sepay import SepayWebhooks
from commerce.payments.vietqr import BankAccount
from commerce.shops.access import ShopTeams
from commerce.shops.routes import SHOPS
from commerce.shops.service import ShopService
from live.analytics import routes as analytics_routes
from live.analytics.routes import LIVE_STATS
from live.analytics.service import LiveStatsService
from live.analytics.visits import VisitRecorder
from live.flash import routes as flash_routes
from live.flash.announcer import FlashAnnouncer
from live.flash.gatekeeper import FlashGatekeeper
from live.flash.routes import FLASH_SALES
from live.flash.service import FlashSaleService
from live.http import system
from live.http.loop_metrics import LoopCollector
from live.http.metrics import METRICS, Metrics
from live.http.middleware import make_middlewares
from live.http.webrtc_metrics import WebrtcCollector
from live.hub import HUB, build_hub
from live.hub.context import live_room, staff_room
from live.pages import routes as page_routes
from live.secrets_store import jwt_secret
from live.sessions import allocations
from live.sessions import routes as live_session_routes
from live.sessions.allocations import AllocationStock, LiveSessionAllocations
from live.sessions.pricing import LiveSessionPrices
from live.sessions.routes import LIVE_SESSIONS, RTMP_URL
from live.sessions.service import LiveSessionService
from live.settings import Settings
from live.stock_keeper import StockKeeper
from live.streaming import routes as streaming_routes
from live.streaming.ingest import StreamIngest
from live.streaming.outputs import StreamOutputs
from live.streaming.relay import RELAY_PATH, RelayEdge, RelayOrigin, relay_token
from live.streaming.routes import STREAM_OUTPUTS
from media.registry import StreamRegistry
from rtmp_ingest.server import RtmpServer
from signaling import WhepService
from signaling import routes as signaling_routes
from signaling.adapters.checks import check_internals
from signaling.ice_servers import IceServers
from signaling.ice_setup import open_ice_port
from signaling.routes import ICE_SERVERS, VIEWER_ID, WHEP
from storage.backends import Backends, BackendUrls
from storage.web.openapi import build_spec

log = logging.getLogger("streamcart")
SETTINGS = web.AppKey("settings", Settings)
SWEEPER = web.AppKey("sweeper", ExpirySweeper)
FLASH_ANNOUNCER = web.AppKey("flash_announcer", FlashAnnouncer)
FLASH_GATEKEEPER = web.AppKey("flash_gatekeeper", FlashGatekeeper)
ALLOCATIONS = web.AppKey("allocations", LiveSessionAllocations)
ALLOCATION_GATEKEEPER = web.AppKey("allocation_gatekeeper", StockKeeper)
STREAMS = web.AppKey("streams", StreamRegistry)
INGEST = web.AppKey("ingest", StreamIngest)
RTMP_SERVER = web.AppKey("rtmp_server", RtmpServer)
RELAY_ORIGIN = web.AppKey("relay_origin", RelayOrigin)
RELAY_EDGE = web.AppKey("relay_edge", RelayEdge)

API_ROUTES = (
    system.routes,
    commerce.accounts.routes.routes,
    commerce.accounts.admin_routes.routes,
    commerce.shops.routes.routes,
    commerce.catalog.routes.routes,
    commerce.carts.routes.routes,
    commerce.orders.routes.routes,
    commerce.payments.routes.routes,
    live_session_routes.routes,
    flash_routes.routes,
    analytics_routes.routes,
    streaming_routes.routes,
    signaling_routes.routes,
)


def backend_urls(settings: Settings) -> BackendUrls:
    return BackendUrls(
        database=settings.effective_database_url,
        redis=settings.redis_url,
        amqp=settings.amqp_url,
        mongo=settings.mongo_url,
        mongo_database=settings.mongo_database,
        redis_prefix=settings.redis_prefix,
        database_pool_size=settings.database_pool_size,
    )


def build_accounts(settings: Settings, backends: Backends) -> AccountService:
    return AccountService(
        sessions=backends.sessions,
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
        passwords=Passwords(settings.password_time_cost, settings.password_memory_kib),
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
    app[SHOPS] = ShopService(backends.sessions, settings.shop_approval_required)
    app[CATALOG] = CatalogService(backends.sessions)
    live_prices = LiveSessionPrices()
    app[FLASH_GATEKEEPER] = FlashGatekeeper(
        backends.sessions, backends.gate, settings.flash_pending_seconds
    )
    app[ALLOCATION_GATEKEEPER] = StockKeeper(
        "allocation-gatekeeper",
        backends.sessions,
        backends.gate,
        AllocationStock(),
        settings.flash_pending_seconds,
        renew_seconds=allocations.RENEW_SECONDS,
    )
    app[ALLOCATIONS] = LiveSessionAllocations(
        backends.sessions, app[ALLOCATION_GATEKEEPER], app[FLASH_GATEKEEPER].resync
    )
    app[CARTS] = CartService(backends.sessions, live_prices, app[ALLOCATIONS])
    payment_window = timedelta(seconds=settings.payment_window)
    express = None
    if backends.driver_pool is not None:
        express = ExpressCheckout(
            backends.driver_pool,
            backends.engine.dialect,
            live_prices,
            app[ALLOCATIONS],
            payment_window,
            backends.relay.wake,
        )
    app[CHECKOUT] = CheckoutService(
        backends.sessions, live_prices, app[ALLOCATIONS], payment_window, express
    )
    app[ORDERS] = OrderService(backends.sessions)
    app[BANK] = BankAccount(settings.sepay_account, settings.sepay_bank)
    app[SEPAY] = SepayWebhooks(backends.sessions, settings.sepay_api_key)
    app[SWEEPER] = ExpirySweeper(backends.sessions, settings.sweep_interval)
    app[LIVE_SESSIONS] = LiveSessionService(backends.sessions)
    teams = ShopTeams(backends.sessions)
    app[FLASH_SALES] = FlashSaleService(
        backends.sessions,
        app[CHECKOUT],
        app[LIVE_SESSIONS],
        app[FLASH_GATEKEEPER],
        teams,
        express,
    )
    app[FLASH_ANNOUNCER] = FlashAnnouncer(backends.sessions, on_ended=app[FLASH_GATEKEEPER].resync)
    app[STREAMS] = StreamRegistry()
    app[WHEP] = WhepService(
        app[STREAMS].get,
        max_viewers=settings.webrtc_max_viewers,
        find_relayed=lambda live_session_id: app[RELAY_EDGE].hub_for(live_session_id),
        pacing=settings.webrtc_pacing,
    )
    app[ICE_SERVERS] = IceServers(
        settings.webrtc_ice_servers,
        secret=settings.turn_secret,
        username=settings.turn_username,
        credential=settings.turn_credential,
        ttl_seconds=settings.turn_credential_ttl,
    )
    app[VIEWER_ID] = signed_in_user_id
    visits = VisitRecorder(backends.sessions)
    app[HUB] = build_hub(
        app,
        backends,
        app[ACCOUNTS],
        app[LIVE_SESSIONS],
        app[WHEP],
        teams,
        visits,
        settings.redis_url,
        channel=f"{settings.redis_prefix}socketio",
    )
    app[WHEP].presence = app[HUB].context.presence  # WHEP viewers count in the audience
    app[LIVE_STATS] = LiveStatsService(
        backends.sessions,
        backends.documents,
        app[LIVE_SESSIONS],
        app[HUB].context.presence,
        visits,
    )
    build_streaming(app, settings, backends)
    metrics.registry.register(WebrtcCollector(app[WHEP], app[RELAY_ORIGIN], app[RELAY_EDGE]))
    metrics.registry.register(LoopCollector())
    app[RTMP_URL] = lambda: settings.rtmp_url_on(app[RTMP_SERVER].port)
    for routes in API_ROUTES:
        routes.add_to(app, authenticate=bearer_guard)
    app[system.OPENAPI] = build_spec(
        (op for routes in API_ROUTES for op in routes.operations),
        title="Stream Cart API",
        version="0.1.0",
        description="Live commerce: accounts, catalog, carts, orders, Sepay payments, "
        "live sessions. Realtime events are documented in docs/realtime.md.",
    )
    system.add_docs_routes(app)
    page_routes.add_routes(app)
    app.cleanup_ctx.append(_run_backends)
    return app


def build_streaming(app: web.Application, settings: Settings, backends: Backends) -> None:
    """RTMP publishers in, stream hubs per session, what is made of each stream, and
    the relay that serves a stream's viewers on every replica."""
    token = relay_token(jwt_secret(settings.jwt_secret, settings.data_dir))
    app[RELAY_ORIGIN] = RelayOrigin(app[STREAMS], token, backends.cache, app[WHEP].viewers)
    app.router.add_get(RELAY_PATH, app[RELAY_ORIGIN].handle)
    app.on_shutdown.append(app[RELAY_ORIGIN].close)
    app[STREAM_OUTPUTS] = StreamOutputs(
        settings.data_dir,
        backends.cache,
        app[HUB].context.emit,
        app[LIVE_STATS],
        record=settings.record_streams,
        health_interval=settings.stream_health_interval,
        staff_room=staff_room,
        webrtc_viewers=app[RELAY_ORIGIN].viewers,
    )
    app[RTMP_SERVER] = RtmpServer(
        settings.rtmp_host, settings.rtmp_port, lambda name, key: app[INGEST].authorize(name, key)
    )
    app[INGEST] = StreamIngest(
        app[LIVE_SESSIONS],
        app[STREAMS],
        backends.cache,
        app[STREAM_OUTPUTS],
        settings.stream_grace_period,
        app[RTMP_SERVER].disconnect,
        relay_url=settings.effective_replica_url,
        announce=lambda event, data: app[HUB].context.emit(
            event, data, live_room(str(data["live_session_id"]))
        ),
    )
    app[RELAY_EDGE] = RelayEdge(
        replica=app[INGEST].replica,
        token=token,
        cache=backends.cache,
        find_origin=app[INGEST].origin_of,
        viewers=app[WHEP].viewers,
        idle_seconds=settings.relay_idle_seconds,
    )


async def _run_backends(app: web.Application):
    """Start everything in order and stop it in reverse. A start that fails (a port
    taken, say) stops what had started, so the process exits with the error instead of
    hanging on tasks nobody stops."""
    settings = app[SETTINGS]
    backends = app[system.BACKENDS]
    async with contextlib.AsyncExitStack() as running:
        running.push_async_callback(backends.close)
        await backends.start()
        if not settings.sepay_api_key:
            log.warning("STREAMCART_SEPAY_API_KEY is not set: every Sepay webhook will get 401")
        await backends.bus.subscribe(
            allocations.CONSUMER, allocations.PATTERNS, app[ALLOCATIONS].on_order_closed
        )
        await backends.bus.subscribe(
            allocations.ENDED_CONSUMER,
            allocations.ENDED_PATTERNS,
            app[ALLOCATIONS].on_session_ended,
        )
        jobs = (
            app[ACCOUNTS].revocations,
            app[SWEEPER],
            app[FLASH_ANNOUNCER],
            app[FLASH_GATEKEEPER],
            app[ALLOCATION_GATEKEEPER],
            app[HUB],
        )
        for job in jobs:
            await job.start()
            running.push_async_callback(job.stop)
        internals = await check_internals()  # aiortc's, aioice's, pylibsrtp's: logged if missing
        app[WHEP].fast_path = internals.fast_path
        ice_port = await open_ice_port(
            settings.webrtc_udp_port,
            settings.webrtc_tcp_port,
            settings.webrtc_public_hosts,
            settings.webrtc_interface_candidates,
            usable=internals.shared_port,
        )
        if ice_port is not None:
            running.push_async_callback(ice_port.close)
        app[WHEP].use_ice_port(ice_port)
        running.push_async_callback(app[WHEP].close_all)
        running.push_async_callback(app[STREAM_OUTPUTS].close)
        running.push_async_callback(app[INGEST].close)
        await app[RELAY_EDGE].start()
        running.push_async_callback(app[RELAY_EDGE].close)
        await app[RTMP_SERVER].start()
        running.push_async_callback(app[RTMP_SERVER].stop)
        app[INGEST].start()
        yield


async def _forwarded_client_ip(request: web.Request, handler):
    """Behind a trusted proxy, the client is the first address in X-Forwarded-For."""
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    if forwarded:
        request = request.clone(remote=forwarded)
    return await handler(request)
