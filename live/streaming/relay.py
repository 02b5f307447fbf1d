"""Viewers on any replica: the replica that ingests a stream relays it to the others.

The replica an RTMP publisher reaches (the stream's origin) names itself in the
stream's publishing lease in the shared cache (live/streaming/ingest.py), renewed
every couple of seconds while it publishes. A WHEP request for that stream on another
replica (an edge) is served there: the edge pulls the origin's WebRTC track over one
authenticated HTTP response (`RelayOrigin`, media/relay_wire.py: the cached GOP first,
then live packets), feeds a stream hub of its own with it and answers with its own
ICE candidates (`RelayEdge`). Every later viewer of the stream on that edge shares the
same pull, so the origin sends one copy per edge, whatever the audience: the fan-out
tree SRS calls origin and edge.

An edge stops pulling a short while after its last viewer left; when the origin's
stream ends (or the origin goes away) the pull ends, and so do the edge's viewers.
Each edge counts its viewers of a stream into the cache every second, and the origin
adds them up for `stream:health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from media.hub import StreamHub, Subscription
from media.packets import OpusFrame, VideoFrame
from media.registry import StreamRegistry
from media.relay_wire import CONTENT_TYPE, RelayDecoder, RelayFormatError, encode, greeting
from storage.cache.port import Cache
from storage.web import Problem

log = logging.getLogger("streamcart.streaming")

RELAY_PATH = "/internal/relay/{live_session_id}"
REPLICA_HEADER = "X-Streamcart-Replica"
RELAY_QUEUE = 512  # packets an edge may fall behind before it skips to a keyframe
COUNT_EVERY = 1.0
COUNT_TTL = 5.0
CONNECT_SECONDS = 3.0

CountViewers = Callable[[str], int]


def relay_token(secret: str) -> str:
    """What an edge shows the origin: derived from the secret every replica shares."""
    return hmac.new(secret.encode(), b"streamcart internal relay", hashlib.sha256).hexdigest()


def viewers_key(live_session_id: str, replica: str) -> str:
    return f"webrtc-viewers:{live_session_id}:{replica}"


def lease_value(owner: str, relay_url: str, *, paused: bool = False) -> bytes:
    """The publishing lease's value: who holds it, where edges pull the stream, and
    whether its publisher is away (within the grace period: another replica may take
    the stream over if the publisher comes back there)."""
    lease = {"owner": owner, "relay": relay_url}
    return json.dumps({**lease, "paused": True} if paused else lease).encode()


def lease_paused(raw: bytes | None) -> bool:
    try:
        return bool(raw and json.loads(raw).get("paused") is True)
    except (ValueError, AttributeError):
        return False


def read_lease(raw: bytes | None) -> tuple[str, str] | None:
    """(owner, relay URL) of a lease value; None for none or one this cannot read."""
    try:
        lease = json.loads(raw) if raw else None
        return (str(lease["owner"]), str(lease["relay"])) if lease else None
    except (ValueError, KeyError, TypeError):
        return None


class RelayOrigin:
    """Serves this replica's streams to edges, and adds up their viewers."""

    def __init__(
        self, streams: StreamRegistry, token: str, cache: Cache, local_viewers: CountViewers
    ) -> None:
        self._streams = streams
        self._token = token
        self._cache = cache
        self._local_viewers = local_viewers
        self._edges: dict[str, dict[Subscription, str]] = {}

    @property
    def pulls(self) -> int:
        """Pulls of this replica's streams by edges, now."""
        return sum(len(edges) for edges in self._edges.values())

    async def viewers(self, live_session_id: str) -> int:
        """This stream's WebRTC viewers here and on every edge that pulls it."""
        total = self._local_viewers(live_session_id)
        for replica in set(self._edges.get(live_session_id, {}).values()):
            with contextlib.suppress(Exception):  # a cache outage: count what is known
                total += int(await self._cache.get(viewers_key(live_session_id, replica)) or 0)
        return total

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET RELAY_PATH: the stream's WebRTC track, until it ends or the edge leaves."""
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(presented.encode(), self._token.encode()):
            raise Problem(401, "unauthorized", "Only another replica may pull a stream.")
        live_session_id = request.match_info["live_session_id"]
        hub = self._streams.get(live_session_id)
        if hub is None or hub.closed:
            raise Problem(404, "stream-not-live", f"{live_session_id} is not ingested here.")
        response = web.StreamResponse(
            headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        subscription = hub.subscribe(webrtc=True, max_queue=RELAY_QUEUE)
        edges = self._edges.setdefault(live_session_id, {})
        edges[subscription] = request.headers.get(REPLICA_HEADER, "")[:64]
        log.info("relaying %s to a replica", live_session_id)
        try:
            await response.write(greeting())
            async for packet in subscription:
                if isinstance(packet, VideoFrame | OpusFrame):
                    await response.write(encode(packet))
            await response.write_eof()
        except ConnectionError:  # the edge went away (aiohttp's reset error is one)
            log.info("a replica stopped pulling %s", live_session_id)
        finally:
            subscription.close()
            edges.pop(subscription, None)
            if not edges:
                self._edges.pop(live_session_id, None)
        return response

    async def close(self, app: web.Application | None = None) -> None:
        """End every pull (at shutdown, so the handlers return at once)."""
        for edges in list(self._edges.values()):
            for subscription in list(edges):
                subscription.close()


@dataclass(eq=False)
class Relay:
    """One stream this edge pulls: its hub and the response it reads."""

    live_session_id: str
    hub: StreamHub
    response: aiohttp.ClientResponse
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class RelayEdge:
    """Pulls other replicas' streams for this replica's viewers."""

    def __init__(
        self,
        *,
        replica: str,
        token: str,
        cache: Cache,
        find_origin: Callable[[str], Awaitable[tuple[str, str] | None]],
        viewers: CountViewers,
        idle_seconds: float,
    ) -> None:
        self.replica = replica
        self._token = token
        self._cache = cache
        self._find_origin = find_origin
        self._viewers = viewers
        self._idle_seconds = idle_seconds
        self._relays: dict[str, Relay] = {}
        self._opening: dict[str, asyncio.Future[StreamHub | None]] = {}
        self._http: aiohttp.ClientSession | None = None

    @property
    def pulls(self) -> int:
        """Streams this replica pulls, now."""
        return len(self._relays)

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_SECONDS)
        )

    async def close(self) -> None:
        for relay in list(self._relays.values()):
            self._end(relay)
        if self._http is not None:
            await self._http.close()

    async def hub_for(self, live_session_id: str) -> StreamHub | None:
        """A hub fed from the stream's origin replica (pulled once per stream); None if
        no other replica ingests it."""
        relay = self._relays.get(live_session_id)
        if relay is not None and not relay.hub.closed:
            return relay.hub
        opening = self._opening.get(live_session_id)
        if opening is not None:
            return await asyncio.shield(opening)
        opening = self._opening[live_session_id] = asyncio.get_running_loop().create_future()
        try:
            hub = await self._open(live_session_id)
        except Exception:
            log.exception("could not pull %s from its origin", live_session_id)
            hub = None
        finally:
            del self._opening[live_session_id]
        opening.set_result(hub)
        return hub

    async def _open(self, live_session_id: str) -> StreamHub | None:
        origin = await self._find_origin(live_session_id)
        if origin is None or origin[0] == self.replica or self._http is None:
            return None
        url = origin[1].rstrip("/") + RELAY_PATH.format(live_session_id=live_session_id)
        try:
            response = await self._http.get(
                url,
                headers={"Authorization": f"Bearer {self._token}", REPLICA_HEADER: self.replica},
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("could not reach the origin of %s: %s", live_session_id, error)
            return None
        if response.status != 200 or response.content_type != CONTENT_TYPE:
            log.warning("the origin of %s answered %s", live_session_id, response.status)
            response.release()
            return None
        relay = Relay(live_session_id, StreamHub(f"{live_session_id}@edge", relayed=True), response)
        self._relays[live_session_id] = relay
        relay.tasks += [
            asyncio.create_task(self._pull(relay), name=f"relay-{live_session_id}"),
            asyncio.create_task(self._count(relay), name=f"relay-count-{live_session_id}"),
        ]
        log.info("pulling %s from %s", live_session_id, origin[1])
        return relay.hub

    async def _pull(self, relay: Relay) -> None:
        decoder = RelayDecoder()
        try:
            async for chunk in relay.response.content.iter_any():
                for packet in decoder.feed(chunk):
                    relay.hub.on_relayed(packet)
            log.info("the origin of %s ended its stream", relay.live_session_id)
        except (aiohttp.ClientError, RelayFormatError, TimeoutError) as error:
            log.warning("pulling %s failed: %s", relay.live_session_id, error)
        finally:
            self._end(relay)

    async def _count(self, relay: Relay) -> None:
        """Count this edge's viewers into the cache; stop pulling once idle."""
        key, idle_since = viewers_key(relay.live_session_id, self.replica), None
        loop = asyncio.get_running_loop()
        while not relay.hub.closed:
            await asyncio.sleep(COUNT_EVERY)
            viewers = self._viewers(relay.live_session_id)
            try:
                await self._cache.set(key, str(viewers).encode(), ttl=COUNT_TTL)
            except Exception:  # a cache outage costs the count, not the stream
                log.exception("could not count the viewers of %s", relay.live_session_id)
            if viewers:
                idle_since = None
            elif idle_since is None:
                idle_since = loop.time()
            elif loop.time() - idle_since >= self._idle_seconds:
                log.info("no viewer of %s left here: stopped pulling it", relay.live_session_id)
                break
        with contextlib.suppress(Exception):
            await self._cache.delete(key)
        self._end(relay)

    def _end(self, relay: Relay) -> None:
        if self._relays.get(relay.live_session_id) is relay:
            del self._relays[relay.live_session_id]
        relay.hub.close()
        relay.response.close()
        current = asyncio.current_task()
        for task in relay.tasks:
            if task is not current:
                task.cancel()
