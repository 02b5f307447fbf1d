"""WHIP publishers: a seller's OBS or browser sends its stream over WebRTC.

The stream key (the `Authorization: Bearer` token OBS's WHIP output sends) is checked
by the live layer exactly as an RTMP publisher's (`authorize`, injected by the
composition root: it raises 401/409 problems), which hands back the hub's `Publisher`;
one aiortc peer per publisher then receives H.264 and Opus. Its receivers hand over
encoded frames without decoding them (signaling/adapters/aiortc_private.py): H.264 goes
into the hub as the FLV tags an RTMP publisher would send, Opus as it came
(signaling/whip_media.py). The hub asks the publisher for keyframes (`keyframe_source`:
an RTCP PLI). The peer closing, failing, never connecting, or a DELETE ends the
publish as an RTMP disconnect does: the hub pauses and the grace period runs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiortc import RTCPeerConnection, RTCSessionDescription

from media.hub import Publisher
from signaling.adapters import Incompatible
from signaling.adapters.aioice_private import gather_on
from signaling.adapters.aiortc_private import (
    check_receiver,
    ice_connections,
    receive_encoded,
    send_pli,
)
from signaling.ice_port import IcePort
from signaling.offers import check_publisher_offer, codec_preferences, malformed_sdp
from signaling.whep import ENDED_STATES, peer_configuration
from signaling.whip_media import (
    OPUS_CLOCK_RATE,
    VIDEO_CLOCK_RATE,
    H264Tags,
    TrackClock,
    opus_frame,
)
from storage.web import Problem

log = logging.getLogger("streamcart.signaling")

Authorize = Callable[[str], Awaitable[Publisher]]


async def receiver_usable() -> bool:
    """Whether this aiortc has the receiver internals WHIP uses (checked once at
    start-up; logged with what falls back when not)."""
    try:
        await check_receiver()
    except Incompatible as missing:
        log.error("%s: WHIP publishers are refused (503); publish over RTMP", missing)
        return False
    return True


class WhipAnswer(NamedTuple):
    resource_id: str
    sdp: str


@dataclass(eq=False)
class Ingest:
    """One WHIP publisher: its peer and the hub publisher it feeds."""

    resource_id: str
    publisher: Publisher
    peer: RTCPeerConnection
    connect_deadline: asyncio.TimerHandle | None = None


class WhipService:
    """Every WHIP publisher of this process.

    `usable`: False where the start-up check found aiortc's receiver internals missing
    (then WHIP answers 503 and publishers use RTMP).
    """

    def __init__(
        self,
        authorize: Authorize,
        *,
        connect_timeout_seconds: float = 30.0,
        ice_port: IcePort | None = None,
    ) -> None:
        self._authorize = authorize
        self._connect_timeout = connect_timeout_seconds
        self.usable = True
        self.use_ice_port(ice_port)
        self._ingests: dict[str, Ingest] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def use_ice_port(self, port: IcePort | None) -> None:
        """Peers made from now on gather on `port` (None: sockets of their own)."""
        self.ice_port = port
        self._configuration = peer_configuration(port)

    def __len__(self) -> int:
        return len(self._ingests)

    async def offer(self, stream_key: str, sdp_offer: str) -> WhipAnswer:
        """Accept a publisher's offer; its answer. Problems: 400/413/422 for an offer
        without H.264 and Opus to send, 401/409 from `authorize`, 503 when unusable."""
        if not self.usable:
            raise Problem(
                503,
                "whip-unavailable",
                "This server cannot receive WebRTC publishers; publish over RTMP.",
            )
        check_publisher_offer(sdp_offer)
        publisher = await self._authorize(stream_key)
        ingest = Ingest(
            secrets.token_urlsafe(18), publisher, RTCPeerConnection(self._configuration)
        )
        self._ingests[ingest.resource_id] = ingest
        try:
            sdp_answer = await self._negotiate(ingest, sdp_offer)
        except BaseException:
            await self._close(ingest)
            raise
        self._watch(ingest)
        return WhipAnswer(ingest.resource_id, sdp_answer)

    async def delete(self, resource_id: str) -> None:
        """End one publish; 404 unless it exists."""
        ingest = self._ingests.get(resource_id)
        if ingest is None:
            raise Problem(404, "unknown-publisher", "No such WHIP publisher (already ended?).")
        await self._close(ingest)

    def disconnect(self, publisher: object, reason: str) -> bool:
        """Close the peer publishing into `publisher` (its stream was stopped elsewhere);
        False if it is not one of these."""
        for ingest in self._ingests.values():
            if ingest.publisher is publisher:
                log.info("WHIP publisher %s disconnected: %s", ingest.resource_id, reason)
                self._spawn(self._close(ingest))
                return True
        return False

    async def close_all(self) -> None:
        await asyncio.gather(*(self._close(ingest) for ingest in list(self._ingests.values())))
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _negotiate(self, ingest: Ingest, sdp_offer: str) -> str:
        peer, publisher = ingest.peer, ingest.publisher
        origin = asyncio.get_running_loop().time()
        video = peer.addTransceiver("video", direction="recvonly")
        video.setCodecPreferences(codec_preferences("video"))
        receive_encoded(video.receiver, self._video_sink(publisher, origin))
        audio = peer.addTransceiver("audio", direction="recvonly")
        audio.setCodecPreferences(codec_preferences("audio"))
        clock = TrackClock(origin, OPUS_CLOCK_RATE)
        receive_encoded(
            audio.receiver, lambda data, ts: publisher.on_opus(opus_frame(data, clock.ms(ts)))
        )
        if self.ice_port is not None:
            for connection in ice_connections(peer):
                gather_on(connection, self.ice_port)
        try:
            await peer.setRemoteDescription(RTCSessionDescription(sdp_offer, "offer"))
        except Exception as error:  # aiortc validates with asserts and assorted errors
            raise malformed_sdp(str(error) or type(error).__name__) from None
        await peer.setLocalDescription(await peer.createAnswer())
        publisher.hub.expect_opus()  # the offer sends Opus (checked)
        publisher.hub.keyframe_source = lambda: self._spawn(send_pli(video.receiver))
        return peer.localDescription.sdp

    @staticmethod
    def _video_sink(publisher: Publisher, origin: float) -> Callable[[bytes, int], None]:
        tags, clock = H264Tags(), TrackClock(origin, VIDEO_CLOCK_RATE)

        def on_access_unit(data: bytes, rtp_timestamp: int) -> None:
            timestamp_ms = clock.ms(rtp_timestamp)
            for tag in tags.tags(data):
                publisher.on_video(timestamp_ms, tag)
            if not tags.configured:  # joined mid-GOP, or the SPS/PPS were lost
                publisher.hub.request_keyframe()

        return on_access_unit

    def _watch(self, ingest: Ingest) -> None:
        peer = ingest.peer

        @peer.on("connectionstatechange")
        def on_connection_state() -> None:
            if peer.connectionState in ENDED_STATES:
                self._spawn(self._close(ingest))
            elif peer.connectionState == "connected" and ingest.connect_deadline is not None:
                ingest.connect_deadline.cancel()

        ingest.connect_deadline = asyncio.get_running_loop().call_later(
            self._connect_timeout, self._give_up_connecting, ingest
        )

    def _give_up_connecting(self, ingest: Ingest) -> None:
        if ingest.peer.connectionState != "connected":
            log.info("WHIP publisher %s never connected; closing it", ingest.resource_id)
            self._spawn(self._close(ingest))

    async def _close(self, ingest: Ingest) -> None:
        """Idempotent: the publisher leaves at once (the grace period starts), then the
        peer closes."""
        if self._ingests.pop(ingest.resource_id, None) is None:
            return
        if ingest.connect_deadline is not None:
            ingest.connect_deadline.cancel()
        ingest.publisher.close()
        try:
            await ingest.peer.close()
        except Exception:
            log.exception("closing WHIP publisher %s failed", ingest.resource_id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
