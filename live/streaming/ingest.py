"""Publishers in: an RTMP stream key becomes a live session's stream hub.

`authorize` is what the RTMP server asks before it accepts any media: the key must
belong to a session that has not ended, and nobody may be publishing to it already,
in this process (the stream registry) or in another (a lease in the shared cache,
refreshed while the stream runs, which also says where other replicas pull the stream:
live/streaming/relay.py). An accepted publisher puts the session live.

When the publisher leaves, the session stays live for a grace period, so an OBS that
reconnects after a network hiccup resumes the same session; past it, the session
ends. The timer is in-process; while a publisher streams, its process also stamps the
session (`publisher_seen_at`) every couple of seconds, and every process sweeps for
live sessions whose stamp is older than the grace period plus the lease: their
process died with them, so they end, as the timer would have ended them. The other
way round, a session its seller ended (on any process) has its publisher disconnected
within a couple of seconds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from live.sessions.models import LiveStatus
from live.sessions.service import LiveSessionService
from live.streaming.outputs import StreamOutputs
from live.streaming.relay import lease_value, read_lease
from media.hub import StreamHub
from media.registry import AlreadyPublishing, StreamRegistry
from rtmp_ingest.sink import PublishRefused
from storage.cache.port import Cache

log = logging.getLogger("streamcart.streaming")

RTMP_APP = "live"
LEASE_SECONDS = 15.0
HOLD_EVERY = 2.0  # seconds between lease refreshes and checks that the session goes on
SWEEP_EVERY = 10.0  # seconds between looks for sessions whose publisher's process died
BAD_NAME = "NetStream.Publish.BadName"


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
        disconnect: Callable[[StreamHub, str], object],
        relay_url: str = "",
    ) -> None:
        """`relay_url`: where other replicas pull this one's streams (the lease says it)."""
        self._live = live_sessions
        self._disconnect = disconnect
        self._registry = registry
        self._cache = cache
        self._outputs = outputs
        self._grace_period = grace_period
        self.replica = uuid.uuid4().hex
        self._lease = lease_value(self.replica, relay_url)
        self._tasks: dict[str, asyncio.Task[None]] = {}
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

    async def authorize(self, app: str, key: str) -> StreamHub:
        """The RTMP server's question: may (app, key) publish? Answers the sink or refuses."""
        if app.strip("/") != RTMP_APP:
            raise PublishRefused(BAD_NAME, f"Use the server URL rtmp://HOST:PORT/{RTMP_APP}.")
        live = await self._live.by_stream_key(key.split("?", 1)[0])
        if live is None:
            raise PublishRefused(BAD_NAME, "Unknown stream key: copy the current key again.")
        if not await self._cache.set_if_absent(lease_key(live.id), self._lease, ttl=LEASE_SECONDS):
            raise PublishRefused(BAD_NAME, "This stream key is already publishing.")
        try:
            hub = self._registry.open(live.id)
        except AlreadyPublishing:
            raise PublishRefused(BAD_NAME, "This stream key is already publishing.") from None
        self._cancel(live.id)
        self._tasks[live.id] = asyncio.create_task(self._hold_lease(live.id, hub))
        await self._live.publisher_seen(live.id)
        await self._live.go_live(live.id, "the publisher started streaming")
        self._outputs.attach(live.id, hub)
        log.info("publisher started on live session %s", live.id)
        return hub

    async def close(self) -> None:
        """Stop every timer (at shutdown; streams are closed by the RTMP server)."""
        for live_session_id in list(self._tasks):
            self._cancel(live_session_id)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await self.end_orphans()
            except Exception:  # a database outage: try again at the next sweep
                log.exception("could not look for orphaned live sessions")

    async def _hold_lease(self, live_session_id: str, hub: StreamHub) -> None:
        """Keep the lease while streaming; stop the publisher once the session ended."""
        key = lease_key(live_session_id)
        while not hub.closed:
            await asyncio.sleep(HOLD_EVERY)
            try:
                live = await self._live.get(live_session_id)
                if hub.closed:
                    break
                if live.status == LiveStatus.ENDED:
                    self._disconnect(hub, "the live session was ended")
                    break
                if await self._cache.get(key) == self._lease:
                    await self._cache.set(key, self._lease, ttl=LEASE_SECONDS)
                await self._live.publisher_seen(live_session_id)
            except Exception:  # a database or cache outage must not end the stream
                log.exception(
                    "live session %s: could not renew its publishing lease", live_session_id
                )

    def _stream_ended(self, live_session_id: str, hub: StreamHub) -> None:
        self._cancel(live_session_id)
        self._tasks[live_session_id] = asyncio.create_task(self._end_after_grace(live_session_id))

    async def _end_after_grace(self, live_session_id: str) -> None:
        try:
            await self._cache.delete(lease_key(live_session_id))
            await asyncio.sleep(self._grace_period)
            self._tasks.pop(live_session_id, None)
            if self._registry.get(live_session_id) is None and not await self._cache.get(
                lease_key(live_session_id)
            ):
                await self._live.end(live_session_id, "the publisher left")
                log.info("live session %s ended: its publisher left", live_session_id)
        except Exception:  # the seller can still end it by hand
            log.exception(
                "live session %s: could not end it after its publisher left", live_session_id
            )

    def _cancel(self, live_session_id: str) -> None:
        task = self._tasks.pop(live_session_id, None)
        if task is not None:
            task.cancel()
