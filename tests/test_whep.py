"""WHEP end to end: an ffmpeg-made stream published into a real hub, real aiortc viewers
negotiating over real HTTP, decoding what the server passes through."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import socketio
from aiohttp import web
from aiortc import RTCRtpSender

from live.http.metrics import Metrics
from live.http.middleware import make_middlewares
from live.hub import webrtc
from live.hub.context import Member
from media.hub import StreamEnded, StreamHub, Subscription
from media.packets import OpusFrame, VideoFrame
from media.registry import StreamRegistry
from signaling import WhepService
from signaling.ice_port import IcePort
from signaling.routes import WHEP, routes
from storage.web import PROBLEM_JSON
from tests.media_support import publish
from tests.webrtc_support import DecodingViewer, eventually, keep_ice_on_loopback, settled

SESSION = "live-1"
SDP = "application/sdp"
FPS = 30
SPEED = 2.0  # paced by the tags' timestamps, twice real time


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    keep_ice_on_loopback(monkeypatch)


class Server:
    """A WHEP app over a stream registry, recording every hub subscription it opens."""

    def __init__(self, client, service: WhepService, registry: StreamRegistry) -> None:
        self.http = client
        self.service = service
        self.registry = registry
        self.subscriptions: list[Subscription] = []

    def open_stream(self, live_session_id: str = SESSION) -> StreamHub:
        hub = self.registry.open(live_session_id)
        subscribe = hub.subscribe

        def recording_subscribe(webrtc: bool, **kwargs) -> Subscription:
            subscription = subscribe(webrtc, **kwargs)
            self.subscriptions.append(subscription)
            return subscription

        hub.subscribe = recording_subscribe  # type: ignore[method-assign]
        return hub

    async def post_offer(self, sdp: str, live_session_id: str = SESSION, **headers):
        return await self.http.post(
            f"/api/live-sessions/{live_session_id}/whep",
            data=sdp.encode(),
            headers={"Content-Type": SDP, **headers},
        )

    async def watch(self, viewer: DecodingViewer, live_session_id: str = SESSION) -> str:
        """Negotiate `viewer` and wait until it is connected; answers its Location."""
        response = await self.post_offer(await viewer.offer(), live_session_id)
        assert response.status == 201, await response.text()
        await viewer.accept(await response.text())
        assert await eventually(lambda: viewer.connected)
        return response.headers["Location"]

    async def all_subscriptions_closed(self) -> bool:
        """Closed subscriptions end at once, even while their stream goes on."""
        for subscription in self.subscriptions:
            try:
                while True:
                    await asyncio.wait_for(subscription.get(), 1.0)
            except StreamEnded:
                continue
            except TimeoutError:
                return False
        return True


@dataclass(frozen=True)
class SignalingHub:
    """The parts of the hub's context that the webrtc events use."""

    sio: socketio.AsyncServer
    whep: WhepService

    async def member(self, sid: str) -> Member:
        return (await self.sio.get_session(sid))["member"]


def attach_webrtc_events(app: web.Application, service: WhepService) -> None:
    """A Socket.IO server with the webrtc events and their disconnect clean-up."""
    hub = SignalingHub(socketio.AsyncServer(async_mode="aiohttp"), service)
    hub.sio.attach(app)

    async def connect(sid: str, environ: dict, auth=None) -> None:
        await hub.sio.save_session(sid, {"member": Member(sid, None, "Guest")})

    async def disconnect(sid: str, reason=None) -> None:
        await webrtc.close_socket_peers(hub, await hub.member(sid))

    hub.sio.on("connect", handler=connect)
    hub.sio.on("disconnect", handler=disconnect)
    webrtc.events.attach(hub)  # type: ignore[arg-type]


@pytest.fixture
async def make_server(aiohttp_client):
    """A WHEP app; its peers share one IcePort on loopback (UDP and TCP) as in production,
    or with `shared_port=False`, have sockets of their own."""
    services: list[WhepService] = []
    registries: list[StreamRegistry] = []
    ports: list[IcePort] = []

    async def make(shared_port: bool = True, **options) -> Server:
        registry = StreamRegistry()
        options.setdefault("max_viewers", 10)
        if shared_port:
            ports.append(IcePort(0, 0, ["127.0.0.1"]))
            await ports[-1].start()
            options["ice_port"] = ports[-1]
        service = WhepService(registry.get, **options)
        app = web.Application(middlewares=make_middlewares(Metrics()))
        app[WHEP] = service
        routes.add_to(app)
        attach_webrtc_events(app, service)
        services.append(service)
        registries.append(registry)
        return Server(await aiohttp_client(app), service, registry)

    yield make
    for registry in registries:
        registry.close_all()
    for service in services:
        await service.close_all()
    for port in ports:
        await port.close()


def count_frames(subscription: Subscription) -> Counter[type]:
    """What the hub has made available for WebRTC so far (read without waiting)."""
    counts: Counter[type] = Counter()
    while (packet := subscription.get_nowait()) is not None:
        counts[type(packet)] += 1
    return counts


@pytest.mark.parametrize("shared_port", [True, False], ids=["shared-port", "own-sockets"])
async def test_viewer_decodes_passed_through_h264_and_receives_opus(
    make_server, stream_tags, shared_port
):
    server = await make_server(shared_port)
    hub = server.open_stream()
    reference = StreamHub.subscribe(hub, webrtc=True)  # counts what was sent; not a viewer
    viewer = DecodingViewer()
    try:
        response = await server.post_offer(await viewer.offer())
        assert response.status == 201
        assert response.content_type == SDP
        location = response.headers["Location"]
        assert location.startswith(f"/api/live-sessions/{SESSION}/whep/")
        answer = await response.text()
        video_codecs = answer.split("m=video")[1].split("m=audio")[0]
        assert "H264/90000" in video_codecs and "VP8" not in video_codecs
        assert "opus/48000" in answer
        assert "nack pli" in answer
        assert "goog-remb" not in answer  # a bandwidth estimate would change nothing here
        await viewer.accept(answer)
        assert await eventually(lambda: viewer.connected)
        assert server.service.viewers(SESSION) == 1

        await publish(hub, stream_tags, speed=SPEED)
        sent: Counter[type] = Counter()

        def sent_so_far() -> int:  # the audio transcoder delivers its last packets late
            sent.update(count_frames(reference))
            return sent.total()

        await settled(sent_so_far)
        await settled(lambda: (viewer.video_frames, viewer.audio_frames))
        print(
            f"decoded {viewer.video_frames}/{sent[VideoFrame]} video frames, "
            f"{viewer.audio_frames}/{sent[OpusFrame]} Opus frames"
        )
        assert sent[VideoFrame] >= 2.5 * FPS
        assert viewer.video_frames >= 0.9 * sent[VideoFrame]
        assert viewer.video_sizes == {(320, 240)}
        assert sent[OpusFrame] > 0
        assert viewer.audio_frames >= 0.9 * sent[OpusFrame]
    finally:
        await viewer.close()


async def test_viewer_joining_mid_stream_starts_on_the_cached_gop(make_server, stream_tags):
    server = await make_server()
    hub = server.open_stream()
    publisher = asyncio.create_task(publish(hub, stream_tags, speed=1.0))
    viewer = DecodingViewer()
    try:
        await asyncio.sleep(1.5)  # halfway into the second GOP
        asked = time.perf_counter()
        await server.watch(viewer)
        assert await eventually(lambda: viewer.video_frames > 0)
        assert viewer.first_video_at is not None
        print(
            f"first decoded frame {1000 * (viewer.first_video_at - asked):.0f} ms after the offer"
        )
        assert viewer.video_sizes == {(320, 240)}
    finally:
        publisher.cancel()
        await viewer.close()


async def test_delete_closes_the_peer_and_counts_the_viewer_down(make_server, stream_tags):
    server = await make_server()
    server.open_stream()
    viewer = DecodingViewer()
    try:
        location = await server.watch(viewer)
        assert server.service.viewers(SESSION) == 1
        response = await server.http.delete(location)
        assert response.status == 204
        assert server.service.viewers(SESSION) == 0
        assert await eventually(lambda: viewer.peer.connectionState in {"closed", "failed"})
        assert await server.all_subscriptions_closed()
        again = await server.http.delete(location)
        assert again.status == 404
        assert again.content_type == PROBLEM_JSON
    finally:
        await viewer.close()


async def test_a_viewer_hanging_up_is_counted_down(make_server):
    server = await make_server()
    server.open_stream()
    viewer = DecodingViewer()
    await server.watch(viewer)
    await viewer.close()  # no DELETE: the server notices the peer closing
    assert await eventually(lambda: server.service.viewers(SESSION) == 0)
    assert await server.all_subscriptions_closed()


async def test_a_viewer_that_never_connects_is_dropped(make_server):
    server = await make_server(connect_timeout_seconds=0.3)
    server.open_stream()
    viewer = DecodingViewer()
    try:
        response = await server.post_offer(await viewer.offer())
        assert response.status == 201  # the answer is never applied
        assert server.service.viewers(SESSION) == 1
        assert await eventually(lambda: server.service.viewers(SESSION) == 0)
        assert await server.all_subscriptions_closed()
    finally:
        await viewer.close()


async def test_stream_end_closes_its_viewers(make_server, stream_tags):
    server = await make_server()
    hub = server.open_stream()
    other = server.open_stream("live-2")
    viewers = [DecodingViewer(), DecodingViewer()]
    try:
        await server.watch(viewers[0])
        await server.watch(viewers[1], "live-2")
        await publish(hub, stream_tags[:40], speed=4.0)
        hub.close()
        assert await eventually(lambda: server.service.viewers(SESSION) == 0)
        assert await eventually(lambda: viewers[0].peer.connectionState in {"closed", "failed"})
        assert server.service.viewers("live-2") == 1  # another stream is unaffected
        other.close()
        assert await eventually(lambda: len(server.service) == 0)
        assert await server.all_subscriptions_closed()
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_viewer_limit_answers_503_with_retry_after(make_server):
    server = await make_server(max_viewers=1, retry_after_seconds=7)
    server.open_stream()
    first, second, third = DecodingViewer(), DecodingViewer(), DecodingViewer()
    try:
        location = await server.watch(first)
        refused = await server.post_offer(await second.offer())
        assert refused.status == 503
        assert refused.content_type == PROBLEM_JSON
        assert refused.headers["Retry-After"] == "7"
        problem = await refused.json()
        assert problem["code"] == "viewer-limit"
        assert "1 viewers" in problem["detail"]
        assert server.service.viewers(SESSION) == 1

        assert (await server.http.delete(location)).status == 204
        await server.watch(third)  # the freed place is taken again
        assert server.service.viewers(SESSION) == 1
    finally:
        for viewer in (first, second, third):
            await viewer.close()


async def test_requests_that_cannot_be_served_get_problems_and_leak_nothing(make_server):
    server = await make_server()
    server.open_stream()
    viewer = DecodingViewer()
    vp8_only = DecodingViewer(audio=False)
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    vp8_only.peer.getTransceivers()[0].setCodecPreferences(vp8)
    try:
        offer = await viewer.offer()
        no_ice_credentials = "".join(
            line for line in offer.splitlines(keepends=True) if not line.startswith("a=ice-")
        )
        cases = [
            (await server.post_offer(offer, "no-such-session"), 404, "stream-not-live"),
            (
                await server.http.post(
                    f"/api/live-sessions/{SESSION}/whep",
                    json={"sdp": offer},
                ),
                415,
                "unsupported-media-type",
            ),
            (await server.post_offer("hello, I am not SDP"), 400, "malformed-sdp"),
            (await server.post_offer("v=0\nm=video x\n"), 400, "malformed-sdp"),
            (await server.post_offer(no_ice_credentials), 400, "malformed-sdp"),
            (await server.post_offer(await vp8_only.offer()), 422, "h264-required"),
            (await server.post_offer("v=0\r\n" + "a=x\r\n" * 10_000), 413, "sdp-too-large"),
        ]
        for response, status, code in cases:
            assert response.status == status, await response.text()
            assert response.content_type == PROBLEM_JSON
            assert (await response.json())["code"] == code
        assert len(server.service) == 0
        assert server.subscriptions  # the bad ICE offer got as far as subscribing...
        assert await server.all_subscriptions_closed()  # ...and was cleaned up
    finally:
        await viewer.close()
        await vp8_only.close()


async def test_socketio_offer_close_and_disconnect(make_server):
    server = await make_server()
    server.open_stream()
    socket = socketio.AsyncClient(reconnection=False)
    viewers = [DecodingViewer(), DecodingViewer(), DecodingViewer()]
    try:
        await socket.connect(str(server.http.make_url("/")), transports=["websocket"])

        async def watch(viewer: DecodingViewer) -> str:
            payload = {"live_session_id": SESSION, "sdp": await viewer.offer()}
            ack = await socket.call("webrtc:offer", payload, timeout=10)
            assert ack["ok"], ack
            await viewer.accept(ack["sdp"])
            assert await eventually(lambda: viewer.connected)
            return ack["resource_id"]

        first = await watch(viewers[0])
        await watch(viewers[1])
        assert server.service.viewers(SESSION) == 2

        closed = await socket.call("webrtc:close", {"resource_id": first}, timeout=10)
        assert closed == {"ok": True}
        assert server.service.viewers(SESSION) == 1
        again = await socket.call("webrtc:close", {"resource_id": first}, timeout=10)
        assert again["error"]["code"] == "unknown-viewer"
        refused = await socket.call(
            "webrtc:offer", {"live_session_id": "nobody", "sdp": "v=0"}, timeout=10
        )
        assert refused["error"]["code"] == "stream-not-live"

        location = await server.watch(viewers[2])  # over HTTP: not this socket's to close
        foreign = await socket.call(
            "webrtc:close", {"resource_id": location.rsplit("/", 1)[1]}, timeout=10
        )
        assert foreign["error"]["code"] == "unknown-viewer"

        await socket.disconnect()
        assert await eventually(lambda: server.service.viewers(SESSION) == 1)
        assert await eventually(lambda: viewers[1].peer.connectionState in {"closed", "failed"})
        assert viewers[2].connected
    finally:
        await socket.disconnect()
        for viewer in viewers:
            await viewer.close()
