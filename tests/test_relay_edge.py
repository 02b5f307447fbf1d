"""The relay between replicas in one process: a RelayOrigin behind a real HTTP server,
a RelayEdge pulling from it, with what an edge must do when its viewers leave and when
its origin goes away."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from live.streaming.relay import RELAY_PATH, RelayEdge, RelayOrigin, relay_token
from media.hub import StreamEnded
from media.packets import OpusFrame, VideoFrame
from media.registry import StreamRegistry
from storage.cache.memory import MemoryCache
from tests.webrtc_support import eventually

SESSION = "live-relay"
TOKEN = relay_token("a secret every replica shares")


class Origin:
    """A RelayOrigin on a real HTTP server, with one stream being published."""

    def __init__(self) -> None:
        self.streams = StreamRegistry()
        self.cache = MemoryCache()
        self.relay = RelayOrigin(self.streams, TOKEN, self.cache, lambda _: 0)
        app = web.Application()
        app.router.add_get(RELAY_PATH, self.relay.handle)
        app.on_shutdown.append(self.relay.close)
        self.server = TestServer(app)

    async def __aenter__(self) -> Origin:
        await self.server.start_server()
        self.hub = self.streams.open(SESSION)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.server.close()


def edge_of(origin: Origin, viewers: dict[str, int], idle: float = 60.0) -> RelayEdge:
    async def find_origin(live_session_id: str) -> tuple[str, str] | None:
        return ("origin", str(origin.server.make_url("/"))) if live_session_id == SESSION else None

    return RelayEdge(
        replica="edge",
        token=TOKEN,
        cache=origin.cache,
        find_origin=find_origin,
        viewers=lambda live_session_id: viewers.get(live_session_id, 0),
        idle_seconds=idle,
    )


def publish_gop(origin: Origin, start: int) -> list[VideoFrame | OpusFrame]:
    packets = [
        VideoFrame(b"\x00\x00\x00\x01\x65key", True, start, start),
        OpusFrame(b"opus", start, 2880),
        VideoFrame(b"\x00\x00\x00\x01\x41delta", False, start + 33, start + 33),
    ]
    for packet in packets:
        origin.hub.on_relayed(packet)  # the origin's own WebRTC track, as a publisher's
    return packets


async def read(subscription, count: int) -> list[object]:
    return [await asyncio.wait_for(subscription.get(), 5) for _ in range(count)]


@pytest.fixture
async def origin():
    async with Origin() as running:
        yield running


async def test_an_edge_gets_the_cached_gop_then_live_packets_and_shares_one_pull(origin):
    first = publish_gop(origin, 0)
    edge = edge_of(origin, {SESSION: 1})
    await edge.start()
    try:
        hub = await edge.hub_for(SESSION)
        assert hub is not None and await edge.hub_for(SESSION) is hub  # one pull per stream
        assert await edge.hub_for("another") is None
        viewer = hub.subscribe(webrtc=True)
        assert await read(viewer, 3) == first
        later = publish_gop(origin, 2000)
        assert await read(viewer, 3) == later
        assert edge.pulls == 1 and origin.relay.pulls == 1
        counted = None
        for _ in range(60):  # the edge counts its viewers into the cache every second
            counted = await origin.cache.get(f"webrtc-viewers:{SESSION}:edge")
            if counted is not None:
                break
            await asyncio.sleep(0.05)
        assert counted == b"1"
        assert await origin.relay.viewers(SESSION) == 1
    finally:
        await edge.close()


async def test_an_idle_pull_stops_and_a_new_viewer_starts_another(origin):
    publish_gop(origin, 0)
    viewers = {SESSION: 0}
    edge = edge_of(origin, viewers, idle=0.3)
    await edge.start()
    try:
        hub = await edge.hub_for(SESSION)
        assert await eventually(lambda: hub.closed, 5)
        assert edge.pulls == 0
        assert await eventually(lambda: origin.relay.pulls == 0, 5)
        again = await edge.hub_for(SESSION)
        assert again is not None and again is not hub and not again.closed
    finally:
        await edge.close()


async def test_when_the_origin_goes_away_the_edges_stream_ends(origin):
    publish_gop(origin, 0)
    edge = edge_of(origin, {SESSION: 1})
    await edge.start()
    try:
        hub = await edge.hub_for(SESSION)
        viewer = hub.subscribe(webrtc=True)
        await read(viewer, 3)
        await origin.server.close()  # the origin replica stops
        with pytest.raises(StreamEnded):
            await asyncio.wait_for(viewer.get(), 10)
        assert hub.closed and edge.pulls == 0
    finally:
        await edge.close()


async def test_an_edge_with_the_wrong_secret_gets_nothing(origin):
    publish_gop(origin, 0)
    edge = edge_of(origin, {SESSION: 1})
    edge._token = relay_token("another secret")
    await edge.start()
    try:
        assert await edge.hub_for(SESSION) is None
        assert origin.relay.pulls == 0
    finally:
        await edge.close()
