"""Building the Socket.IO hub on the app, and running its background work.

Choices, and why:

- `async_mode="aiohttp"`, attached at `/socket.io/` of the same app as the REST API:
  one port, one process model, one place for TLS and proxies.
- `async_handlers=False`: a socket's events are handled one after the other, so a
  viewer's messages are stored and broadcast in the order they were typed, and a
  `chat:send` sent right after `session:join` finds the join done. Sockets still run
  concurrently with each other.
- Same-origin only (python-socketio's default for `cors_allowed_origins`), like the
  REST API, which sends no CORS headers: the web client is served from this origin or
  through the same reverse proxy.
- Packets over 64 KiB close the connection (Engine.IO's rule): the largest legitimate
  payload, a full blocked-words list, is far smaller. A long-polling POST over it is
  answered with 413 at once and ends its session (`live.hub.polling`).
- With a Redis URL, `AsyncRedisManager` is the backplane: an emit from any process
  reaches sockets on every process, so one competing bus consumer is enough.
- Either way the manager is `live.hub.broadcast`'s: a broadcast is framed once and the
  same bytes are written to every websocket client, so a room of thousands costs little
  more than one `transport.write` per viewer.
- python-engineio's and python-socketio's internals are used only in
  `live.hub.engineio_private` and `live.hub.socketio_private`, checked once here
  (`live.hub.internals`); without them the hub serves on the libraries' public path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

import socketio
from aiohttp import web

from commerce.accounts.service import AccountService
from commerce.shops.access import ShopTeams
from live.auctions.routes import AUCTIONS
from live.giveaways.routes import GIVEAWAYS
from live.hub import (
    auctions,
    bridge,
    chat,
    connection,
    giveaways,
    moderation,
    pins,
    polling,
    reactions,
    rooms,
    vouchers,
    webrtc,
)
from live.hub.broadcast import client_manager
from live.hub.chat import recent
from live.hub.context import HubContext, Visits, live_room
from live.hub.dispatch import attach_unknown_event_handler
from live.hub.engineio_private import end_session
from live.hub.internals import Internals, check_internals
from live.hub.presence import Presence
from live.hub.reactions import Reactions
from live.hub.rooms import live_tools_builder, shared_builder
from live.hub.snapshots import Snapshots
from live.hub.socketio_private import (
    AckAwareServer,
    backplane_client,
    backplane_listener,
    start_manager,
)
from live.sessions.service import LiveSessionService
from live.vouchers.routes import VOUCHER_DROPS
from signaling.whep import WhepService
from storage.backends import Backends
from storage.bus.port import EventBus

log = logging.getLogger("streamcart.hub")
CHANNEL = "streamcart-socketio"
MAX_PACKET_BYTES = 64 * 1024
TICK_SECONDS = 0.25
HANDLER_MODULES = (rooms, chat, moderation, pins, reactions, webrtc, auctions, vouchers, giveaways)


class Hub:
    """The hub of one process: its Socket.IO server and its background work."""

    def __init__(self, context: HubContext, bus: EventBus, usable: Internals) -> None:
        self.context = context
        self._bus = bus
        self._usable = usable
        self._ticker: asyncio.Task[None] | None = None
        self._bridge: bridge.Bridge | None = None

    @property
    def sio(self) -> socketio.AsyncServer:
        return self.context.sio

    async def start(self) -> None:
        """Listen to the backplane now rather than at the first connection, then start
        forwarding bus events and the once-a-second tickers."""
        if self._usable.socketio:
            start_manager(self.sio)
        self._bridge = bridge.Bridge(self.context)
        await self._bus.subscribe(bridge.CONSUMER, bridge.PATTERNS, self._bridge.handle)
        self._ticker = asyncio.create_task(self._tick(), name="hub-ticker")
        await self.context.visits.start()

    async def stop(self) -> None:
        if self._ticker is not None:
            await _cancel(self._ticker)
            self._ticker = None
        if self._bridge is not None:
            await self._bridge.close()
        await self.sio.shutdown()  # sockets disconnect: their visits close
        await self.context.visits.stop()
        await _stop_backplane(self.sio.manager)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.context.presence.tick()
                await self.context.reactions.tick(time.time())
            except Exception:  # a cache outage must not end the ticker for good
                log.exception("hub tick failed")


HUB = web.AppKey("hub", Hub)


async def _cancel(task: asyncio.Task) -> None:
    """Cancel `task` and wait for it, cancelling again while it runs on. A cancellation
    that lands inside a Redis call can come out as a timeout or connection error, which
    the ticker's (or python-socketio's) retry loop then catches and carries on: seen as
    a shutdown hanging forever under load."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s ended with an error", task.get_name(), exc_info=error)


async def _stop_backplane(manager: socketio.AsyncManager) -> None:
    """python-socketio starts the pub/sub listener task but never stops it; a clean
    shutdown (and a test run without leaked tasks) needs it cancelled and its Redis
    connection closed."""
    listener = backplane_listener(manager)
    if listener is not None:
        await _cancel(listener)
    redis = backplane_client(manager)
    if redis is not None:
        await redis.aclose()


def build_hub(
    app: web.Application,
    backends: Backends,
    accounts: AccountService,
    live_sessions: LiveSessionService,
    whep: WhepService,
    teams: ShopTeams,
    visits: Visits,
    redis_url: str,
    *,
    channel: str = CHANNEL,
) -> Hub:
    usable = check_internals()
    server_class = AckAwareServer if usable.socketio else socketio.AsyncServer
    sio = server_class(
        async_mode="aiohttp",
        client_manager=client_manager(redis_url, channel, usable.fast_broadcast),
        async_handlers=False,
        max_http_buffer_size=MAX_PACKET_BYTES,
    )
    ending = partial(end_session, sio.eio) if usable.engineio else None
    polling.attach(app, sio, MAX_PACKET_BYTES, ending)

    async def emit_count(live_session_id: str, viewers: int) -> None:
        count = {"live_session_id": live_session_id, "viewers": viewers}
        await sio.emit("viewers:count", count, to=live_room(live_session_id))

    async def emit_reactions(live_session_id: str, counts: dict[str, int]) -> None:
        tally = {"live_session_id": live_session_id, "counts": counts, "window": 1}
        await sio.emit("reaction:counts", tally, to=live_room(live_session_id))

    snapshots = Snapshots(
        shared_builder(live_sessions, backends.sessions),
        lambda live_session_id: recent(backends.documents, live_session_id),
        live_tools_builder(app[AUCTIONS], app[GIVEAWAYS], app[VOUCHER_DROPS]),
        room_prefix=live_room(""),
    )
    sio.manager.on_emit = snapshots.note_emit
    context = HubContext(
        sio=sio,
        sessions=backends.sessions,
        cache=backends.cache,
        documents=backends.documents,
        accounts=accounts,
        live_sessions=live_sessions,
        presence=Presence(backends.cache, emit_count),
        reactions=Reactions(backends.cache, emit_reactions),
        whep=whep,
        teams=teams,
        snapshots=snapshots,
        visits=visits,
        auctions=app[AUCTIONS],
        vouchers=app[VOUCHER_DROPS],
        giveaways=app[GIVEAWAYS],
    )
    connection.attach(context)
    for module in HANDLER_MODULES:
        module.events.attach(context)
    attach_unknown_event_handler(context)
    return Hub(context, backends.bus, usable)
