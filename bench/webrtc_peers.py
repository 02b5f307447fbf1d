"""The processes of the WebRTC fan-out benchmark: the servers, the viewers and the pulls.

    python bench/webrtc_peers.py ours SOURCE.flv PORT MAX_VIEWERS
    python bench/webrtc_peers.py port SOURCE.flv PORT MAX_VIEWERS
    python bench/webrtc_peers.py relay SOURCE.ts PORT
    python bench/webrtc_peers.py edge ORIGIN_URL PORT MAX_VIEWERS
    python bench/webrtc_peers.py viewers CONFIG.json
    python bench/webrtc_peers.py pulls CONFIG.json

Each is its own OS process so that /proc gives each its own CPU time. "ours" and "port"
are the same app, the project's WHEP service; "ours" leaves each peer its own UDP
socket (aioice's default), "port" puts every peer on one shared `IcePort` on 127.0.0.1
(a free UDP port, no ICE-TCP), as `streamcart serve` does by default; both send each
frame at once, and "paced" is "port" with the send pacing `streamcart serve` turns on
by default (signaling/rtp/pacer.py). All of them serve
the internal relay route (`RelayOrigin`), so either can be the origin of an "edge": the
"port" app on a replica that ingests nothing, its stream pulled from the origin at
ORIGIN_URL by a `RelayEdge`. Every server runs on uvloop (as `streamcart serve` does),
answers `GET /healthz`, keeps ICE on 127.0.0.1 and stops on SIGTERM. Every process
prints JSON lines on stdout for the driver (`webrtc_fanout.py`): the viewers and the
pulls (relay pulls of the stream, as edges make them) their phases ("start" and "end",
when it samples CPU) and result; the "port" and "edge" servers, as they stop, a
"server" line with what the shared port dropped.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import threading
import time
import types
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aioice.ice
import uvloop
from aiohttp import web
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
    rtcrtpreceiver,
)
from aiortc.contrib.media import MediaPlayer, MediaRelay

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for the project's FLV reader in tests/media_support.py

from live.http.metrics import Metrics  # noqa: E402
from live.http.middleware import make_middlewares  # noqa: E402
from live.streaming.relay import (  # noqa: E402
    RELAY_PATH,
    REPLICA_HEADER,
    RelayEdge,
    RelayOrigin,
    relay_token,
)
from media.packets import VideoFrame  # noqa: E402
from media.registry import StreamRegistry  # noqa: E402
from media.relay_wire import RelayDecoder  # noqa: E402
from signaling import WhepService  # noqa: E402
from signaling.adapters import aioice_private  # noqa: E402
from signaling.ice_port import IcePort  # noqa: E402
from signaling.routes import WHEP, routes  # noqa: E402
from storage.cache.memory import MemoryCache  # noqa: E402
from tests.media_support import publish, read_flv_tags  # noqa: E402

HOST = "127.0.0.1"
LIVE_SESSION_ID = "bench"
OURS_OFFER_PATH = f"/api/live-sessions/{LIVE_SESSION_ID}/whep"
RELAY_OFFER_PATH = "/offer"
RELAY_PULL_PATH = RELAY_PATH.format(live_session_id=LIVE_SESSION_ID)  # origin -> edge
RELAY_SECRET = "stream-cart-bench-relay"  # noqa: S105 (every bench server's, loopback only)
RELAY_TOKEN = relay_token(RELAY_SECRET)
EDGE_REPLICA = "bench-edge"
EDGE_IDLE_SECONDS = 900.0  # longer than any run: the edge never stops pulling by itself
SDP = "application/sdp"
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])  # aiortc's default asks a public STUN server
ENDED_STATES = {"failed", "closed"}
CLOSE_TIMEOUT = 10.0
VIEWER_RECEIVE_BUFFER = 4 << 20  # bytes per viewer socket (Linux default: ~208 KiB)


def keep_ice_on_loopback() -> None:
    """aioice offers every host address but loopback; this benchmark uses loopback only."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [HOST]


def report(phase: str, **fields: object) -> None:
    """One JSON line on stdout for the driver."""
    print(json.dumps({"phase": phase, **fields}), flush=True)


def require_loopback(url: str) -> str:
    """The benchmark's processes only ever talk to 127.0.0.1."""
    if urlsplit(url).hostname != HOST:
        raise SystemExit(f"refusing {url}: only {HOST} is allowed")
    return url


# --- the servers ------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def serve(app: web.Application, port: int) -> None:
    """Run `app` on 127.0.0.1:`port` with uvloop until SIGTERM or SIGINT."""

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await runner.cleanup()

    keep_ice_on_loopback()
    app.router.add_get("/healthz", healthz)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def ours_app(
    source: Path, max_viewers: int, shared_port: bool = False, pacing: bool = False
) -> web.Application:
    """The project's WHEP routes and WhepService over a StreamRegistry whose one hub is
    fed the FLV file's tags at real time, as the RTMP server would feed it. With
    `shared_port` every peer is on one IcePort instead of a socket of its own. It is an
    origin too: edges pull its stream on the internal relay route, as from a replica
    that ingests it (`live/app.py`), with the bench's token."""
    registry = StreamRegistry()
    service = WhepService(registry.get, max_viewers=max_viewers, pacing=pacing)
    origin = RelayOrigin(registry, RELAY_TOKEN, MemoryCache(), service.viewers)
    app = web.Application(middlewares=make_middlewares(Metrics()))
    app[WHEP] = service
    routes.add_to(app)
    app.router.add_get(RELAY_PATH, origin.handle)
    app.on_shutdown.append(origin.close)  # ends the pulls, so their handlers return
    if shared_port:  # before `stream`: contexts unwind in reverse, the peers close first
        app.cleanup_ctx.append(on_one_port(service))

    async def stream(app: web.Application) -> AsyncIterator[None]:
        hub = registry.open(LIVE_SESSION_ID)
        publisher = asyncio.create_task(publish(hub, read_flv_tags(source), speed=1.0))
        yield
        publisher.cancel()
        registry.close_all()
        await service.close_all()

    app.cleanup_ctx.append(stream)
    return app


def edge_app(origin_url: str, max_viewers: int) -> web.Application:
    """The "port" app on a replica that ingests nothing: its WhepService finds the
    stream through a RelayEdge that pulls it from the origin at `origin_url`, as
    `live/app.py` wires it (the origin here fixed, not read from the stream's lease).
    The pull opens as the app starts, not at the first viewer as in production, so the
    idle CPU is the relay's own (the pull, its decoding and the hub) with nobody
    watching, as the origin's is the stream's; the app fails to start without it."""
    require_loopback(origin_url)

    async def find_origin(live_session_id: str) -> tuple[str, str]:
        return "bench-origin", origin_url

    edge = RelayEdge(
        replica=EDGE_REPLICA,
        token=RELAY_TOKEN,
        cache=MemoryCache(),
        find_origin=find_origin,
        viewers=lambda live_session_id: service.viewers(live_session_id),
        idle_seconds=EDGE_IDLE_SECONDS,
    )
    service = WhepService(
        StreamRegistry().get, max_viewers=max_viewers, find_relayed=edge.hub_for, pacing=False
    )
    app = web.Application(middlewares=make_middlewares(Metrics()))
    app[WHEP] = service
    routes.add_to(app)
    app.cleanup_ctx.append(on_one_port(service))  # before `pull`: the peers close first

    async def pull(app: web.Application) -> AsyncIterator[None]:
        await edge.start()
        if await edge.hub_for(LIVE_SESSION_ID) is None:
            await edge.close()
            raise RuntimeError(f"could not pull {LIVE_SESSION_ID} from {origin_url}")
        yield
        await edge.close()
        await service.close_all()

    app.cleanup_ctx.append(pull)
    return app


def on_one_port(
    service: WhepService,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: the service's peers share one IcePort on 127.0.0.1 (a free
    UDP port, no ICE-TCP) while the app runs. Once it is closed, a "server" line
    reports what it dropped over its life, by reason (nothing, in a clean run)."""

    async def ice_port(app: web.Application) -> AsyncIterator[None]:
        await aioice_private.check()  # fail at start, not in every viewer's answer
        port = IcePort(0, None, [HOST])
        await port.start()
        service.use_ice_port(port)
        yield
        await port.close()
        dropped = dict(port.dropped)
        report("server", udp_port=port.udp_port, dropped=sum(dropped.values()), by_reason=dropped)

    return ice_port


class RelayReference:
    """Plain aiortc, as its server example does it: one MediaPlayer of the file without
    decoding, relayed by MediaRelay to one RTCPeerConnection per viewer."""

    def __init__(self, source: Path) -> None:
        self._source = source
        self._player: MediaPlayer | None = None
        self._relay = MediaRelay()
        self._peers: set[RTCPeerConnection] = set()

    async def offer(self, request: web.Request) -> web.Response:
        if self._player is None:  # opened on the loop that will read it
            self._player = MediaPlayer(str(self._source), decode=False)
        peer = RTCPeerConnection(NO_ICE_SERVERS)
        self._peers.add(peer)

        @peer.on("connectionstatechange")
        async def on_state() -> None:
            if peer.connectionState in ENDED_STATES:
                self._peers.discard(peer)
                await peer.close()

        await peer.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        for track in (self._player.video, self._player.audio):
            peer.addTrack(self._relay.subscribe(track))
        await peer.setLocalDescription(await peer.createAnswer())
        return web.Response(status=201, text=peer.localDescription.sdp, content_type=SDP)

    async def close(self, app: web.Application) -> None:
        await asyncio.gather(*(peer.close() for peer in self._peers), return_exceptions=True)


def relay_app(source: Path) -> web.Application:
    reference = RelayReference(source)
    app = web.Application()
    app.router.add_post(RELAY_OFFER_PATH, reference.offer)
    app.on_shutdown.append(reference.close)
    return app


# --- the viewers ------------------------------------------------------------------------


class CountingDecoderQueue:
    """Stands in for the queue between an aiortc receiver's jitter buffer and its
    decoder thread: it counts the complete frames the jitter buffer hands over instead
    of decoding them (a 720p decode per viewer would make the load process the whole
    benchmark). The decoder thread waits in `get` until the receiver stops."""

    def __init__(self) -> None:
        self.frames = 0
        self._ended = threading.Event()

    def put(self, item: object) -> None:
        if item is None:
            self._ended.set()
        else:
            self.frames += 1

    def get(self) -> None:
        self._ended.wait()


def enlarge_receive_buffers() -> None:
    """One Python process receives for every viewer, far slower than a browser per
    packet: while it works through one viewer's burst (a keyframe is ~50 packets, sent
    at once to every viewer) the other viewers' sockets must hold theirs, or the load
    generator, not the server, loses the frames."""
    made = aioice.ice.StunProtocol.connection_made

    def connection_made(protocol: aioice.ice.StunProtocol, transport) -> None:
        made(protocol, transport)
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, VIEWER_RECEIVE_BUFFER)

    aioice.ice.StunProtocol.connection_made = connection_made  # type: ignore[method-assign]


def count_instead_of_decoding() -> None:
    rtcrtpreceiver.queue = types.SimpleNamespace(Queue=CountingDecoderQueue)  # type: ignore[attr-defined]


def frame_counter(receiver: RTCRtpReceiver) -> CountingDecoderQueue:
    return receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]


def only_codec(transceiver: RTCRtpTransceiver, mime_types: set[str]) -> None:
    """Offer only H.264 (with RTX) or Opus: both servers pass the stream through."""
    kind = transceiver.kind
    codecs = RTCRtpReceiver.getCapabilities(kind).codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() in mime_types])


class Viewer:
    """One receive-only peer: H.264 video and Opus audio, video frames counted."""

    def __init__(self) -> None:
        self.peer = RTCPeerConnection(NO_ICE_SERVERS)
        self.video = self.peer.addTransceiver("video", direction="recvonly")
        only_codec(self.video, {"video/h264", "video/rtx"})
        only_codec(self.peer.addTransceiver("audio", direction="recvonly"), {"audio/opus"})

    @property
    def connected(self) -> bool:
        return self.peer.connectionState == "connected"

    @property
    def video_frames(self) -> int:
        return frame_counter(self.video.receiver).frames

    async def join(self, http: aiohttp.ClientSession, offer_url: str) -> None:
        await self.peer.setLocalDescription(await self.peer.createOffer())
        offer = self.peer.localDescription.sdp
        async with http.post(offer_url, data=offer, headers={"Content-Type": SDP}) as response:
            if response.status != 201:
                raise RuntimeError(f"offer answered {response.status}: {await response.text()}")
            answer = await response.text()
        await self.peer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        while not self.connected:
            if self.peer.connectionState in ENDED_STATES:
                raise RuntimeError(f"peer {self.peer.connectionState} before connecting")
            await asyncio.sleep(0.05)


async def join_all(viewers: list[Viewer], config: dict) -> int:
    """Join every viewer, `join_concurrency` at a time, within `join_timeout_s` in all.
    Returns how many failed; they stay in the count and deliver nothing."""
    gate = asyncio.Semaphore(config["join_concurrency"])
    timeout = aiohttp.ClientTimeout(total=config["join_timeout_s"])

    async def join(viewer: Viewer, http: aiohttp.ClientSession) -> None:
        async with gate:
            await viewer.join(http, config["offer_url"])

    async with aiohttp.ClientSession(timeout=timeout) as http:
        joins = [asyncio.create_task(join(viewer, http)) for viewer in viewers]
        done, pending = await asyncio.wait(joins, timeout=config["join_timeout_s"])
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    failures = [task.exception() for task in done if task.exception() is not None]
    if failures:
        print(f"{len(failures)} joins failed, the first: {failures[0]!r}", file=sys.stderr)
    return len(failures) + len(pending)


async def measured_window(
    config: dict, read: Callable[[], list[tuple[int, ...]]]
) -> tuple[list[tuple[int, ...]], float]:
    """After the warm-up, what each reader counted over the window (`read()` after
    minus before, per figure) and the window's length; reports "start" and "end"."""
    await asyncio.sleep(config["warmup_s"])
    before = read()
    report("start")
    window_start = time.perf_counter()
    await asyncio.sleep(config["window_s"])
    after = read()
    window = time.perf_counter() - window_start
    report("end")
    counted = [
        tuple(a - b for a, b in zip(later, earlier, strict=True))
        for later, earlier in zip(after, before, strict=True)
    ]
    return counted, window


async def watch(config: dict) -> None:
    """Join N viewers, let them settle, then count video frames over the window."""
    viewers = [Viewer() for _ in range(config["viewers"])]
    try:
        started = time.perf_counter()
        failed = await join_all(viewers, config)
        report("joined", viewers=len(viewers) - failed, join_s=time.perf_counter() - started)
        counted, window = await measured_window(
            config, lambda: [(viewer.video_frames,) for viewer in viewers]
        )
        report(
            "result",
            viewers=len(viewers),
            join_failures=failed,
            connected_at_end=sum(viewer.connected for viewer in viewers),
            window_s=window,
            frames=[frames for (frames,) in counted],
        )
    finally:
        closing = asyncio.gather(*(viewer.peer.close() for viewer in viewers))
        await asyncio.wait_for(closing, CLOSE_TIMEOUT)


class Pull:
    """One edge's pull of the stream from the origin, as RelayEdge opens it, its video
    frames decoded from the relay wire and counted instead of fed to a hub."""

    def __init__(self, index: int) -> None:
        self.replica = f"bench-pull-{index}"
        self.connected = False  # answered 200 and still reading
        self.frames = 0
        self.received = 0  # bytes

    async def run(self, http: aiohttp.ClientSession, url: str) -> None:
        headers = {"Authorization": f"Bearer {RELAY_TOKEN}", REPLICA_HEADER: self.replica}
        async with http.get(url, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"pull answered {response.status}: {await response.text()}")
            self.connected = True
            decoder = RelayDecoder()
            try:
                async for chunk in response.content.iter_any():
                    self.received += len(chunk)
                    packets = decoder.feed(chunk)
                    self.frames += sum(isinstance(packet, VideoFrame) for packet in packets)
            finally:
                self.connected = False


async def pull_all(config: dict) -> None:
    """Open the pulls, all within `join_timeout_s`, let them settle, then count video
    frames and bytes over the window."""
    url = require_loopback(config["relay_url"])
    pulls = [Pull(index) for index in range(config["pulls"])]
    timeout = aiohttp.ClientTimeout(total=None, connect=config["join_timeout_s"])
    async with aiohttp.ClientSession(timeout=timeout) as http:
        tasks = [asyncio.create_task(pull.run(http, url)) for pull in pulls]
        try:
            started = time.perf_counter()
            deadline = started + config["join_timeout_s"]
            while time.perf_counter() < deadline and not all(pull.connected for pull in pulls):
                if all(task.done() for task in tasks):
                    break
                await asyncio.sleep(0.05)
            failed = sum(not pull.connected for pull in pulls)
            errors = [t.exception() for t in tasks if t.done() and t.exception() is not None]
            if errors:
                print(f"{len(errors)} pulls failed, the first: {errors[0]!r}", file=sys.stderr)
            report("joined", viewers=len(pulls) - failed, join_s=time.perf_counter() - started)
            counted, window = await measured_window(
                config, lambda: [(pull.frames, pull.received) for pull in pulls]
            )
            report(
                "result",
                viewers=len(pulls),
                join_failures=failed,
                connected_at_end=sum(pull.connected for pull in pulls),
                window_s=window,
                frames=[frames for frames, _ in counted],
                received_bytes=[received for _, received in counted],
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def run_load(run: Callable[[dict], Coroutine[Any, Any, None]], config_path: Path) -> None:
    """Run a load process's coroutine on uvloop, reporting its failure to the driver."""
    config = json.loads(config_path.read_text())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            runner.run(run(config))
        except Exception as error:
            report("error", message=repr(error))
            raise


def run_viewers(config_path: Path) -> None:
    keep_ice_on_loopback()
    enlarge_receive_buffers()
    count_instead_of_decoding()
    run_load(watch, config_path)


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "ours": lambda args: serve(ours_app(Path(args[0]), int(args[2])), int(args[1])),
    "port": lambda args: serve(ours_app(Path(args[0]), int(args[2]), True), int(args[1])),
    "paced": lambda args: serve(
        ours_app(Path(args[0]), int(args[2]), True, pacing=True), int(args[1])
    ),
    "relay": lambda args: serve(relay_app(Path(args[0])), int(args[1])),
    "edge": lambda args: serve(edge_app(args[0], int(args[2])), int(args[1])),
    "viewers": lambda args: run_viewers(Path(args[0])),
    "pulls": lambda args: run_load(pull_all, Path(args[0])),
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](sys.argv[2:])
