"""The WHIP source of the WebRTC fan-out benchmark (`webrtc_fanout.py --source`):

    python bench/whip_peers.py server PORT MAX_VIEWERS
    python bench/whip_peers.py publisher SERVER_URL SOURCE.ts SECONDS

"server" is webrtc_peers.py's "port" app (the project's WHEP routes, every viewer on one
shared `IcePort`, no pacing) whose hub is fed by the project's `WhipService` instead of
an FLV file: the first WHIP publisher with the bench's stream key opens it. "publisher"
is an aiortc peer that sends the MPEG-TS file's H.264 and Opus as they are stored
(`MediaPlayer(decode=False)`, at real time), so the stream is the RTMP one's, without an
encoder in the publisher; it prints `{"phase": "published"}` once connected and stops
after SECONDS. Loopback only, as webrtc_peers.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from webrtc_peers import (
    LIVE_SESSION_ID,
    NO_ICE_SERVERS,
    SDP,
    keep_ice_on_loopback,
    on_one_port,
    report,
    require_loopback,
    serve,
)

from live.http.metrics import Metrics
from live.http.middleware import make_middlewares
from media.hub import Publisher
from media.registry import StreamRegistry
from signaling import WhepService
from signaling.routes import WHEP, WHIP, WHIP_PATH, routes
from signaling.whip import WhipService, receiver_usable
from storage.web import Problem

STREAM_KEY = "stream-cart-bench-whip"  # loopback only
CONNECT_TIMEOUT = 30.0


def whip_app(max_viewers: int) -> web.Application:
    """WHEP viewers on one shared port; the stream comes in over WHIP."""
    registry = StreamRegistry()
    service = WhepService(registry.get, max_viewers=max_viewers, pacing=False)

    async def authorize(key: str) -> Publisher:
        if key != STREAM_KEY:
            raise Problem(401, "unknown-stream-key", "Not the bench's stream key.")
        return Publisher(registry.open(LIVE_SESSION_ID), lambda hub: None)

    whip = WhipService(authorize)
    app = web.Application(middlewares=make_middlewares(Metrics()))
    app[WHEP], app[WHIP] = service, whip
    routes.add_to(app)
    app.cleanup_ctx.append(on_one_port(service))

    async def ingest(app: web.Application) -> AsyncIterator[None]:
        whip.usable = await receiver_usable()
        yield
        await whip.close_all()
        registry.close_all()
        await service.close_all()

    app.cleanup_ctx.append(ingest)
    return app


async def publish(server_url: str, source: Path, seconds: float) -> None:
    """Send the file's H.264 and Opus over WHIP for `seconds`, then DELETE."""
    player = MediaPlayer(str(source), decode=False)
    peer = RTCPeerConnection(NO_ICE_SERVERS)
    for track, codec in ((player.video, "H264"), (player.audio, "opus")):
        transceiver = peer.addTransceiver(track, direction="sendonly")
        codecs = RTCRtpSender.getCapabilities(track.kind).codecs
        transceiver.setCodecPreferences([c for c in codecs if c.name == codec])
    connected = asyncio.Event()
    peer.on(
        "connectionstatechange", lambda: peer.connectionState == "connected" and connected.set()
    )
    await peer.setLocalDescription(await peer.createOffer())
    headers = {"Content-Type": SDP, "Authorization": f"Bearer {STREAM_KEY}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(server_url + WHIP_PATH, data=peer.localDescription.sdp,
                             headers=headers) as response:  # fmt: skip
            if response.status != 201:
                raise RuntimeError(f"WHIP: {response.status} {await response.text()}")
            answer, location = await response.text(), response.headers["Location"]
        await peer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await connected.wait()
        report("published")
        try:
            await asyncio.sleep(seconds)
        finally:
            await http.delete(server_url + location)
            await peer.close()


def main(argv: list[str]) -> int:
    keep_ice_on_loopback()
    if argv[:1] == ["server"]:
        serve(whip_app(int(argv[2])), int(argv[1]))
    elif argv[:1] == ["publisher"]:
        asyncio.run(publish(require_loopback(argv[1]), Path(argv[2]), float(argv[3])))
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
