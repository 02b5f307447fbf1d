"""The composition root: builds the one aiohttp application from Settings."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from aiohttp import web

import commerce.accounts.address_routes
import commerce.accounts.admin_routes
import commerce.accounts.routes
import commerce.accounts.self_routes
import commerce.carts.routes
import commerce.catalog.routes
import commerce.follows.routes
import commerce.notifications.push_routes
import commerce.notifications.routes
import commerce.orders.routes
import commerce.payments.routes
import commerce.shops.routes
import commerce.vouchers.routes
from commerce.accounts.address_routes import ADDRESSES
from commerce.accounts.addresses import AddressBook
from commerce.accounts.auth import ACCOUNTS, bearer_guard, signed_in_user_id
from commerce.accounts.passwords import Passwords
from commerce.accounts.self_routes import EDIT_THROTTLE, SELF_SERVICE
from commerce.accounts.self_service import AccountSelfService
from commerce.accounts.service import AccountService
from commerce.accounts.throttle import LoginThrottle
from commerce.accounts.tokens import AccessTokens
from commerce.carts.routes import CARTS
from commerce.carts.service import CartService
from commerce.catalog.routes import CATALOG
from commerce.catalog.service import CatalogService
from commerce.follows.routes import FOLLOWS
from commerce.follows.service import FollowService
from commerce.mail.channel import EmailChannel
from commerce.mail.smtp import SmtpConfig, SmtpSender
from commerce.mail.worker import MAILER, Mailer
from commerce.notifications import consumer as notifications
from commerce.notifications import vapid
from commerce.notifications.channels import ChannelRegistry
from commerce.notifications.preferences import Preferences
from commerce.notifications.push import PushChannel
from commerce.notifications.push_routes import PUSH, PUSH_SUBSCRIPTIONS, VAPID
from commerce.notifications.push_subscriptions import PushSubscriptions
from commerce.notifications.routes import NOTIFICATIONS, PREFERENCES
from commerce.notifications.service import NotificationService
from commerce.orders.checkout import CheckoutService
from commerce.orders.express import ExpressCheckout
from commerce.orders.routes import CHECKOUT, ORDERS
from commerce.orders.service import OrderService
from commerce.orders.sweeper import ExpirySweeper
from commerce.payments.qr_codes import PaymentQrCodes
from commerce.payments.routes import BANK, PAYMENT_QR, SEPAY
from commerce.payments.sepay import SepayWebhooks
from commerce.payments.vietqr import BankAccount
from commerce.shops.access import ShopTeams
from commerce.shops.routes import SHOPS
from commerce.shops.service import ShopService
from live.analytics import routes as analytics_routes
from live.analytics.routes import LIVE_STATS
from live.analytics.service import LiveStatsService
from live.analytics.visits import VisitRecorder
from live.auctions import routes as auction_routes
from live.auctions.wiring import build_auctions
from live.flash import routes as flash_routes
from live.flash.announcer import FlashAnnouncer
from live.flash.gatekeeper import FlashGatekeeper
from live.flash.routes import FLASH_SALES
from live.flash.service import FlashSaleService
from live.giveaways import routes as giveaway_routes
from live.giveaways.wiring import build_giveaways
from live.http import system
from live.http.loop_metrics import LoopCollector
from live.http.metrics import METRICS, Metrics
from live.http.middleware import make_middlewares
from live.http.webrtc_metrics import WebrtcCollector
from live.hub import HUB, build_hub
from live.hub.context import live_room, staff_room
from live.hub.notifications import pusher, session_shop
from live.pages import routes as page_routes
from live.secrets_store import jwt_secret, vapid_private_key
from live.sessions import allocations
from live.sessions import routes as live_session_routes
from live.sessions.allocations import AllocationStock, LiveSessionAllocations
from live.sessions.pricing import LiveSessionPrices
from live.sessions.routes import LIVE_SESSIONS, RTMP_URL, WHIP_URL
from live.sessions.service import LiveSessionService
from live.settings import Settings
from live.stock_keeper import StockKeeper
from live.streaming import routes as streaming_routes
from live.streaming.hls import HLS_OUTPUTS, HlsOutputs
from live.streaming.hls_forward import HLS_FORWARDER, HlsForwarder
from live.streaming.hls_timeline import HlsTimeline
from live.streaming.ingest import StreamIngest
from live.streaming.outputs import StreamOutputs
from live.streaming.relay import RELAY_PATH, RelayEdge, RelayOrigin, relay_token
from live.streaming.routes import HLS_TIMELINE, STREAM_OUTPUTS
from live.vouchers import routes as voucher_routes
from live.vouchers.wiring import build_vouchers
from media.registry import StreamRegistry
from rtmp_ingest.server import RtmpServer
from signaling import WhepService
from signaling import routes as signaling_routes
from signaling.adapters.checks import check_internals
from signaling.ice_servers import IceServers
from signaling.ice_setup import open_ice_port
from signaling.routes import ICE_SERVERS, VIEWER_ID, WHEP, WHIP, WHIP_PATH, add_cors
from signaling.whip import WhipService, receiver_usable
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
    commerce.accounts.self_routes.routes,
    commerce.accounts.address_routes.routes,
    commerce.shops.routes.routes,
    commerce.follows.routes.routes,
    commerce.notifications.routes.routes,
    commerce.catalog.routes.routes,
    commerce.carts.routes.routes,
    commerce.orders.routes.routes,
    commerce.payments.routes.routes,
    commerce.notifications.push_routes.routes,
    live_session_routes.routes,
    flash_routes.routes,
    auction_routes.routes,
    commerce.vouchers.routes.routes,
    voucher_routes.routes,
    giveaway_routes.routes,
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


def build_account_services(app: web.Application, settings: Settings, backends: Backends) -> None:
    """Mail (on when an SMTP host is set), a user's own account and their addresses."""
    sender = None
    if settings.smtp_host:
        sender = SmtpSender(
            SmtpConfig(
                settings.smtp_host,
                settings.smtp_port,
                settings.smtp_username,
                settings.smtp_password,
                settings.smtp_from,
                settings.smtp_starttls,
            )
        )
    app[MAILER] = Mailer(backends.sessions, sender, first_retry_seconds=settings.smtp_retry_seconds)
    if sender is not None:
        channel = EmailChannel(app[MAILER], settings.effective_public_url)
        app[NOTIFICATIONS].channels.register("email", channel)
    hour = 3600  # the limits are per hour: mail and secrets tight, edits loose
    app[SELF_SERVICE] = AccountSelfService(
        backends.sessions,
        app[ACCOUNTS],
        app[MAILER],
        LoginThrottle(
            backends.cache,
            per_account=10,
            per_ip=50,
            window_seconds=hour,
            name="account",
            detail="Too many attempts. Try again later.",
        ),
        settings.effective_public_url,
    )
    app[ADDRESSES] = AddressBook(backends.sessions)
    app[EDIT_THROTTLE] = LoginThrottle(
        backends.cache,
        per_account=60,
        per_ip=600,
        window_seconds=hour,
        name="edit",
        detail="Too many changes. Try again later.",
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
    app[FOLLOWS] = FollowService(backends.sessions)
    app[PREFERENCES] = Preferences(backends.sessions)
    app[NOTIFICATIONS] = NotificationService(backends.documents, ChannelRegistry())
    build_account_services(app, settings, backends)
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
    app[PAYMENT_QR] = PaymentQrCodes(backends.sessions, app[BANK])
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
    build_auctions(app, backends)
    build_vouchers(app, settings, backends)
    build_giveaways(app, backends)
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
    app[NOTIFICATIONS].on_stored(pusher(app[HUB].context))
    app[LIVE_STATS] = LiveStatsService(
        backends.sessions,
        backends.documents,
        app[LIVE_SESSIONS],
        app[HUB].context.presence,
        visits,
    )
    build_streaming(app, settings, backends)
    build_push(app, settings, backends)
    metrics.registry.register(WebrtcCollector(app[WHEP], app[RELAY_ORIGIN], app[RELAY_EDGE]))
    metrics.registry.register(LoopCollector())
    app[RTMP_URL] = lambda: settings.rtmp_url_on(app[RTMP_SERVER].port)
    app[WHIP_URL] = f"{settings.effective_public_url}{WHIP_PATH}"
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
    add_cors(app)
    app.cleanup_ctx.append(_run_backends)
    return app


def build_streaming(app: web.Application, settings: Settings, backends: Backends) -> None:
    """RTMP publishers in, stream hubs per session, what is made of each stream, and
    the relay and HLS forwarding that serve a stream's viewers on every replica."""
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
    app[HLS_TIMELINE] = HlsTimeline(backends.sessions, app[LIVE_STATS])
    app[HLS_OUTPUTS] = HlsOutputs(
        hold_back_parts=settings.hls_part_hold_back,
        dateranges=app[HLS_TIMELINE].dateranges,
        elsewhere=lambda request: app[HLS_FORWARDER].forward(request),
    )
    app[HLS_OUTPUTS].add_routes(app)
    app[RTMP_SERVER] = RtmpServer(
        settings.rtmp_host, settings.rtmp_port, lambda name, key: app[INGEST].authorize(name, key)
    )
    app[INGEST] = StreamIngest(
        app[LIVE_SESSIONS],
        app[STREAMS],
        backends.cache,
        app[STREAM_OUTPUTS],
        settings.stream_grace_period,
        lambda publisher, reason: any(
            app[key].disconnect(publisher, reason) for key in (RTMP_SERVER, WHIP)
        ),
        relay_url=settings.effective_replica_url,
        announce=lambda event, data: app[HUB].context.emit(
            event, data, live_room(str(data["live_session_id"]))
        ),
        hls=app[HLS_OUTPUTS],
    )
    app[WHIP] = WhipService(app[INGEST].whip_publisher)
    app[RELAY_EDGE] = RelayEdge(
        replica=app[INGEST].replica,
        token=token,
        cache=backends.cache,
        find_origin=app[INGEST].origin_of,
        viewers=app[WHEP].viewers,
        idle_seconds=settings.relay_idle_seconds,
    )
    app[HLS_FORWARDER] = HlsForwarder(
        replica=app[INGEST].replica, find_origin=app[INGEST].origin_of
    )


def build_push(app: web.Application, settings: Settings, backends: Backends) -> None:
    """Web push, on when a VAPID contact is set: the key pair, the browsers'
    subscriptions and the channel that posts to their push services."""
    app[PUSH_SUBSCRIPTIONS] = PushSubscriptions(
        backends.sessions, settings.webpush_allow_loopback_http
    )
    if not settings.vapid_subject:
        return
    key = vapid_private_key(
        settings.vapid_private_key, settings.data_dir, vapid.generate_private_key
    )
    app[VAPID] = vapid.VapidSigner(key, settings.vapid_subject)
    app[PUSH] = PushChannel(
        app[PUSH_SUBSCRIPTIONS],
        app[VAPID],
        allow_loopback=settings.webpush_allow_loopback_http,
    )
    app[NOTIFICATIONS].channels.register("push", app[PUSH])
    app.on_cleanup.append(lambda app: app[PUSH].stop())


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
        if app[BANK].misconfigured:
            log.warning(app[BANK].missing_reason)
        await backends.bus.subscribe(
            allocations.CONSUMER, allocations.PATTERNS, app[ALLOCATIONS].on_order_closed
        )
        await backends.bus.subscribe(
            allocations.ENDED_CONSUMER,
            allocations.ENDED_PATTERNS,
            app[ALLOCATIONS].on_session_ended,
        )
        await backends.bus.subscribe(
            notifications.CONSUMER,
            notifications.PATTERNS,
            notifications.NotificationConsumer(
                backends.sessions, app[NOTIFICATIONS], session_shop(backends.sessions)
            ).handle,
        )
        running.push_async_callback(app[NOTIFICATIONS].close)
        jobs = (
            app[ACCOUNTS].revocations,
            app[MAILER],
            app[SWEEPER],
            app[FLASH_ANNOUNCER],
            app[FLASH_GATEKEEPER],
            app[ALLOCATION_GATEKEEPER],
            app[HUB],
            app[NOTIFICATIONS].retention(settings.notification_retention_days),
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
        app[WHIP].usable = await receiver_usable()
        app[WHIP].use_ice_port(ice_port)
        running.push_async_callback(app[WHIP].close_all)
        running.push_async_callback(app[HLS_OUTPUTS].close)
        running.push_async_callback(app[STREAM_OUTPUTS].close)
        running.push_async_callback(app[INGEST].close)
        await app[RELAY_EDGE].start()
        running.push_async_callback(app[RELAY_EDGE].close)
        await app[HLS_FORWARDER].start()
        running.push_async_callback(app[HLS_FORWARDER].close)
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
