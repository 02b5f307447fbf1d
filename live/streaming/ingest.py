"""Publishers in: a stream key (RTMP's, or the bearer token of a WHIP publisher) becomes a
live session's stream hub.

`authorize` is what the RTMP server asks before it accepts any media (`whip_publisher`
what a WHIP offer asks, refused as problem documents), both through `publish`: the key must
belong to a session that has not ended, and nobody may be publishing to it already,
in this process (the stream registry) or in another (a lease in the shared cache,
refreshed while the stream runs, which also says where other replicas pull the stream:
live/streaming/relay.py). An accepted publisher puts the session live.

When the publisher leaves, the session stays live for a grace period and its stream
hub waits, paused: an OBS that reconnects after a network hiccup resumes the same hub,
so viewers keep their peer connections and simply see the picture move again
(`stream:reconnecting`, then `stream:resumed`, to the session's room). The lease stays
held, marked paused, so a publisher that comes back through another replica takes the
stream over there (this replica's paused hub then closes; its viewers re-offer and
are served through the relay). Past the grace period the hub closes, ending its
viewers (RTCP BYE), and the session ends (`stream:ended` follows `live.ended`).

The timer is in-process; while a stream is held, its process also stamps the session
(`publisher_seen_at`) every couple of seconds, and every process sweeps for live
sessions whose stamp is older than the grace period plus the lease: their process
died with them, so they end, as the timer would have ended them. The other way round,
a session its seller ended (on any process) has its stream closed and its publisher
disconnected within a couple of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from live.sessions.models import LiveStatus
from live.sessions.service import LiveSessionService
from live.streaming.hls import HlsOutputs
from live.streaming.outputs import StreamOutputs
from live.streaming.relay import lease_paused, lease_value, read_lease
from media.hub import Publisher, StreamHub
from media.registry import AlreadyPublishing, StreamRegistry
from rtmp_ingest.sink import PublishRefused
from storage.cache.port import Cache
from storage.web import Problem

log = logging.getLogger("streamcart.streaming")

RTMP_APP = "live"
LEASE_SECONDS = 15.0
HOLD_EVERY = 2.0  # seconds between lease refreshes and checks that the session goes on
SWEEP_EVERY = 10.0  # seconds between looks for sessions whose publisher's process died
BAD_NAME = "NetStream.Publish.BadName"
STALE_PUBLISHER_SECONDS = 3.0  # OBS sends audio every ~20 ms and video every frame


Announce = Callable[[str, dict[str, object]], Awaitable[None]]


class UnknownStreamKey(PublishRefused):
    def __init__(self) -> None:
        super().__init__(BAD_NAME, "Unknown stream key: copy the current key again.")


class StreamKeyInUse(PublishRefused):
    def __init__(self) -> None:
        super().__init__(BAD_NAME, "This stream key is already publishing.")


def lease_key(live_session_id: str) -> str:
    return f"publishing:{live_session_id}"


class StreamIngest:
    def __init__(
        self,
        live_sessions: LiveSessionService,
        registry: StreamRegistry,
        cache: Cache,
        outputs: StreamOutputs,
        grace_period: float,
        disconnect: Callable[[Publisher, str], object],
        relay_url: str = "",
        announce: Announce | None = None,
        hls: HlsOutputs | None = None,
    ) -> None:
        """`relay_url`: where other replicas pull this one's streams (the lease says it);
        `announce(event, data)`: an event to the session's room (`data` names it)."""
        self._live = live_sessions
        self._disconnect = disconnect
        self._registry = registry
        self._cache = cache
        self._outputs = outputs
        self._hls = hls
        self._grace_period = grace_period
        self._announce = announce
        self.replica = uuid.uuid4().hex
        self._lease = lease_value(self.replica, relay_url)
        self._paused_lease = lease_value(self.replica, relay_url, paused=True)
        self._holds: dict[str, asyncio.Task[None]] = {}
        self._graces: dict[str, asyncio.Task[None]] = {}
        self._publishers: dict[str, Publisher] = {}
        self._releases: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        registry.on_stream_ended(self._stream_ended)

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="orphaned-streams")

    async def end_orphans(self) -> list[str]:
        """End the live sessions whose publisher has been silent for longer than the
        grace period and a lease (no process holds them any more); their ids."""
        silent_for = timedelta(seconds=self._grace_period + LEASE_SECONDS)
        ended = []
        for live_session_id in await self._live.silent_since(datetime.now(UTC) - silent_for):
            if self._registry.get(live_session_id) is not None:
                continue  # streaming here after all (a heartbeat failed)
            if await self._live.end(live_session_id, "its publisher's server stopped"):
                log.info("live session %s ended: its publisher's server stopped", live_session_id)
                ended.append(live_session_id)
        return ended

    async def origin_of(self, live_session_id: str) -> tuple[str, str] | None:
        """(replica, relay URL) of the process publishing the stream, if any does."""
        return read_lease(await self._cache.get(lease_key(live_session_id)))

    async def authorize(self, app: str, key: str) -> Publisher:
        """The RTMP server's question: may (app, key) publish? Answers the sink or refuses."""
        if app.strip("/") != RTMP_APP:
            raise PublishRefused(BAD_NAME, f"Use the server URL rtmp://HOST:PORT/{RTMP_APP}.")
        return await self.publish(key.split("?", 1)[0])

    async def whip_publisher(self, key: str) -> Publisher:
        """A WHIP publisher's question, refusals as problems: 401 for a key that is no
        session's, 409 while the key is publishing (over RTMP or WHIP, on any replica)."""
        try:
            return await self.publish(key)
        except UnknownStreamKey as refused:
            raise Problem(401, "unknown-stream-key", refused.description) from None
        except StreamKeyInUse as refused:
            raise Problem(409, "already-publishing", refused.description) from None

    async def publish(self, key: str) -> Publisher:
        """Accept a publisher of `key` (RTMP or WHIP): one per session on every replica;
        the session goes live (or resumes within its grace period)."""
        live = await self._live.by_stream_key(key)
        if live is None:
            raise UnknownStreamKey
        held = self._registry.get(live.id)
        if held is not None and held.publishing:
            self._replace_if_silent(live.id, held)
        if (held is not None and held.publishing) or not await self._take_lease(live.id):
            raise StreamKeyInUse
        try:
            hub = self._registry.open(live.id)  # a paused hub of this session resumes
        except AlreadyPublishing:
            raise StreamKeyInUse from None
        self._cancel(self._graces, live.id)
        publisher = self._publishers[live.id] = Publisher(
            hub, lambda left: self._publisher_left(live.id, left)
        )
        if live.id not in self._holds:
            self._holds[live.id] = asyncio.create_task(self._hold_lease(live.id, hub))
            self._outputs.attach(live.id, hub)
            if self._hls is not None:
                self._hls.attach(live.id, hub)
        await self._live.publisher_seen(live.id)
        if live.status == LiveStatus.LIVE:
            await self._tell(live.id, "stream:resumed")
            log.info("publisher back on live session %s", live.id)
        else:
            await self._live.go_live(live.id, "the publisher started streaming")
            log.info("publisher started on live session %s", live.id)
        return publisher

    async def close(self) -> None:
        """Stop every timer and close every stream (at shutdown, after the RTMP server:
        the outputs finish their recordings)."""
        for tasks in (self._holds, self._graces):
            for live_session_id in list(tasks):
                self._cancel(tasks, live_session_id)
        self._registry.close_all()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _replace_if_silent(self, live_session_id: str, hub: StreamHub) -> None:
        """A publisher that has sent nothing for STALE_PUBLISHER_SECONDS is a connection
        that died without a word (a Wi-Fi drop leaves it half open until the idle
        timeout): the new one with the same key replaces it at once. A publisher that
        is still sending keeps its stream (a second one is refused)."""
        publisher = self._publishers.get(live_session_id)
        silent_for = asyncio.get_running_loop().time() - hub.last_input_at
        if publisher is None or silent_for < STALE_PUBLISHER_SECONDS:
            return
        log.info(
            "live session %s: replacing a publisher silent for %.1f s", live_session_id, silent_for
        )
        self._disconnect(publisher, "a new connection with this stream key replaced it")
        publisher.close()  # paused now, not when the connection's close comes round

    async def _take_lease(self, live_session_id: str) -> bool:
        """Hold the stream's lease: a free one, this replica's own (its stream paused or
        gone), or one whose publisher is away on another replica, which this one then
        takes the stream over from."""
        key = lease_key(live_session_id)
        if await self._cache.set_if_absent(key, self._lease, ttl=LEASE_SECONDS):
            return True
        held = await self._cache.get(key)
        if held is None:  # expired meanwhile
            return await self._cache.set_if_absent(key, self._lease, ttl=LEASE_SECONDS)
        hub = self._registry.get(live_session_id)
        ours = held in (self._lease, self._paused_lease) and (hub is None or not hub.publishing)
        return (ours or lease_paused(held)) and await self._cache.replace(
            key, held, self._lease, ttl=LEASE_SECONDS
        )

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await self.end_orphans()
            except Exception:  # a database outage: try again at the next sweep
                log.exception("could not look for orphaned live sessions")

    async def _hold_lease(self, live_session_id: str, hub: StreamHub) -> None:
        """Keep the lease while the stream is held (publishing or paused); close the
        stream once the session ended, or once another replica took it over."""
        while not hub.closed:
            await asyncio.sleep(HOLD_EVERY)
            try:
                live = await self._live.get(live_session_id)
                if hub.closed:
                    break
                if live.status == LiveStatus.ENDED:
                    self._end_stream(live_session_id, hub, "the live session was ended")
                    break
                if not await self._renew(live_session_id, hub):
                    log.info("live session %s: taken over by another replica", live_session_id)
                    hub.close()
                    break
                await self._live.publisher_seen(live_session_id)
            except Exception:  # a database or cache outage must not end the stream
                log.exception(
                    "live session %s: could not renew its publishing lease", live_session_id
                )

    async def _renew(self, live_session_id: str, hub: StreamHub) -> bool:
        """Renew this replica's lease, saying whether the stream is paused now (a pause
        and a resume racing each other may have left it saying the opposite); False
        if it is gone."""
        key = lease_key(live_session_id)
        ours = (self._lease, self._paused_lease)
        mine = ours[0] if hub.publishing else ours[1]
        held = await self._cache.get(key)
        if held in ours:
            if await self._cache.replace(key, held, mine, ttl=LEASE_SECONDS):
                return True
            return await self._cache.get(key) in ours  # our own pause or resume meanwhile
        if held is None and hub.publishing:  # expired in a cache outage: take it again
            return await self._cache.set_if_absent(key, self._lease, ttl=LEASE_SECONDS)
        return False

    def _end_stream(self, live_session_id: str, hub: StreamHub, reason: str) -> None:
        publisher = self._publishers.pop(live_session_id, None)
        if publisher is not None:
            self._disconnect(publisher, reason)
        hub.close()

    def _publisher_left(self, live_session_id: str, hub: StreamHub) -> None:
        self._publishers.pop(live_session_id, None)
        if hub.closed:
            return
        self._cancel(self._graces, live_session_id)
        self._graces[live_session_id] = asyncio.create_task(
            self._end_after_grace(live_session_id, hub)
        )

    async def _end_after_grace(self, live_session_id: str, hub: StreamHub) -> None:
        key = lease_key(live_session_id)
        try:
            with contextlib.suppress(Exception):  # the lease may still say "publishing"
                await self._cache.replace(key, self._lease, self._paused_lease, LEASE_SECONDS)
            await self._tell(live_session_id, "stream:reconnecting", grace_s=self._grace_period)
            await asyncio.sleep(self._grace_period)
            self._graces.pop(live_session_id, None)
            if hub.publishing or hub.closed:
                return
            hub.close()
            await self._live.end(live_session_id, "the publisher left")
            log.info("live session %s ended: its publisher left", live_session_id)
        except Exception:  # the seller can still end it by hand
            log.exception(
                "live session %s: could not end it after its publisher left", live_session_id
            )

    def _stream_ended(self, live_session_id: str, hub: StreamHub) -> None:
        """The hub closed for good: stop holding its lease and give it up."""
        self._cancel(self._holds, live_session_id)
        self._cancel(self._graces, live_session_id)
        self._publishers.pop(live_session_id, None)
        task = asyncio.get_running_loop().create_task(self._release(live_session_id))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, live_session_id: str) -> None:
        """Delete the lease if it is still this replica's (another may have taken the
        stream over): a compare-and-set to an expiry of a millisecond."""
        key = lease_key(live_session_id)
        try:
            for mine in (self._lease, self._paused_lease):
                if await self._cache.replace(key, mine, mine, ttl=0.001):
                    break
        except Exception:  # it expires by itself
            log.exception("live session %s: could not give up its lease", live_session_id)

    async def _tell(self, live_session_id: str, event: str, **data: object) -> None:
        if self._announce is None:
            return
        try:
            await self._announce(event, {"live_session_id": live_session_id, **data})
        except Exception:
            log.exception("live session %s: could not announce %s", live_session_id, event)

    @staticmethod
    def _cancel(tasks: dict[str, asyncio.Task[None]], live_session_id: str) -> None:
        task = tasks.pop(live_session_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
