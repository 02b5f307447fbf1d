"""WHEP viewers: one aiortc peer per viewer, fed by its stream's fan-out.

aiortc negotiates, connects and runs RTCP for each peer; the RTP itself comes from one
`StreamFanout` per stream hub, which packetizes each frame once for all its viewers
(signaling/rtp/fanout.py); where the libraries lack what that needs, aiortc sends
each viewer's media itself (signaling/hub_track.py). One HTTP offer/answer is enough
(aiortc gathers its ICE candidates inside `setLocalDescription`, so the answer carries
them all). The service owns every peer of the process: it counts them per session,
enforces the process-wide viewer limit, and closes a peer on DELETE, on its owner's
request (a Socket.IO disconnect), on ICE or DTLS failure, when it never connects, and
when the stream ends, so neither peers nor hub subscriptions can leak.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from media.hub import StreamHub
from signaling.adapters.aioice_private import gather_on
from signaling.adapters.aiortc_private import ice_connections
from signaling.hub_track import HubTrack
from signaling.ice_port import IcePort
from signaling.offers import (
    ViewerOffer,
    check_offer,
    codec_preferences,
    malformed_sdp,
    without_remb,
)
from signaling.rtp.fanout import StreamFanout
from signaling.rtp.rtp_sender import ViewerClock, ViewerRtpSender
from storage.web import Problem

log = logging.getLogger("streamcart.signaling")


class ViewerPresence(Protocol):
    """The session's audience count (live.hub.presence.Presence): a viewer counts once
    however many sockets and peers it has, by the key it joins with."""

    async def join(self, live_session_id: str, viewer: str) -> None: ...

    async def leave(self, live_session_id: str, viewer: str) -> None: ...


FindStream = Callable[[str], StreamHub | None]
FindRelayed = Callable[[str], Awaitable[StreamHub | None]]
ENDED_STATES = {"failed", "closed"}


class WhepAnswer(NamedTuple):
    resource_id: str
    sdp: str


@dataclass(eq=False)
class Viewer:
    """One peer connection and the stream fan-out that feeds its RTP senders."""

    resource_id: str
    live_session_id: str
    owner: str | None
    hub: StreamHub
    peer: RTCPeerConnection
    fanout: StreamFanout | None = None
    senders: list[ViewerRtpSender] = field(default_factory=list)
    tracks: list[HubTrack] = field(default_factory=list)  # without the fast path
    connect_deadline: asyncio.TimerHandle | None = None
    presence_key: str | None = None  # counted in the audience under this key


class WhepService:
    """Every WebRTC viewer of this process.

    `find_stream` is injected by the composition root (this package cannot import the
    live layer), `find_relayed` finds a stream another replica ingests, and `owner` ties
    a viewer to whatever opened it (a socket id) so it can be closed with it.
    `fast_path`: viewers are fed by the shared-frame fan-out (False where the start-up
    check found the internals it needs missing: aiortc's own sender feeds them).
    """

    def __init__(
        self,
        find_stream: FindStream,
        *,
        max_viewers: int,
        retry_after_seconds: int = 30,
        connect_timeout_seconds: float = 30.0,
        ice_port: IcePort | None = None,
        find_relayed: FindRelayed | None = None,
        pacing: bool = True,
        fast_path: bool = True,
    ) -> None:
        if max_viewers < 1:
            raise ValueError("max_viewers must be at least 1")
        self.max_viewers = max_viewers
        self._find_stream = find_stream
        self._find_relayed = find_relayed
        self._retry_after = retry_after_seconds
        self._connect_timeout = connect_timeout_seconds
        self._pacing = pacing
        self.fast_path = fast_path
        self.use_ice_port(ice_port)
        self._viewers: dict[str, Viewer] = {}
        self._per_session: Counter[str] = Counter()
        self._watched_hubs: weakref.WeakSet[StreamHub] = weakref.WeakSet()
        self._fanouts: dict[StreamHub, StreamFanout] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.presence: ViewerPresence | None = None

    def use_ice_port(self, port: IcePort | None) -> None:
        """Peers made from now on gather on `port` (None: sockets of their own). On the
        shared port a peer must be one ICE agent, found by its username fragment:
        max-bundle gives it one whatever the offer (browsers bundle anyway). The server
        needs no STUN or TURN of its own: viewers reach its host candidates."""
        self.ice_port = port
        self._configuration = peer_configuration(port)

    def __len__(self) -> int:
        return len(self._viewers)

    def viewers(self, live_session_id: str) -> int:
        return self._per_session[live_session_id]

    async def offer(
        self,
        live_session_id: str,
        sdp_offer: str,
        *,
        owner: str | None = None,
        user_id: str | None = None,
    ) -> WhepAnswer:
        """Build a peer for a viewer's offer and return its answer. A viewer without an
        owner (a socket, which the audience counts already) joins the audience itself:
        as `user_id` when signed in (so a user's socket and peer count once), else as
        its own peer.

        Raises a Problem: 404 `stream-not-live`, 400/413/422 for an offer that cannot be
        served, 503 `viewer-limit` when this process has as many viewers as it may take.
        """
        hub = self._find_stream(live_session_id)
        pull = self._find_relayed if hub is None else None  # another replica may ingest it
        if (hub is None and pull is None) or (hub is not None and hub.closed):
            raise stream_not_live(live_session_id)
        offer = check_offer(sdp_offer)  # before any pull from another replica starts
        self._refuse_when_full()
        if pull is not None:
            hub = await pull(live_session_id)
            self._refuse_when_full()  # others may have joined while it started
        if hub is None or hub.closed:
            raise stream_not_live(live_session_id)
        viewer = self._open(live_session_id, hub, owner)
        hub.request_keyframe()  # a WHIP publisher sends one: the viewer starts sooner
        try:
            sdp_answer = await self._negotiate(viewer, offer)
        except BaseException as error:
            ended_meanwhile = viewer.resource_id not in self._viewers
            await self._close(viewer)
            if ended_meanwhile and isinstance(error, Exception):  # it broke the half-built peer
                raise stream_not_live(live_session_id) from None
            raise
        if viewer.resource_id not in self._viewers:
            raise stream_not_live(live_session_id)
        if owner is None and self.presence is not None:
            viewer.presence_key = user_id or f"whep:{viewer.resource_id}"
            await self.presence.join(live_session_id, viewer.presence_key)
        return WhepAnswer(viewer.resource_id, sdp_answer)

    def _refuse_when_full(self) -> None:
        if len(self._viewers) >= self.max_viewers:
            raise Problem(
                503,
                "viewer-limit",
                f"This server is already sending video to {self.max_viewers} viewers, its "
                "limit; try again shortly.",
                headers={"Retry-After": str(self._retry_after)},
            )

    async def delete(
        self,
        resource_id: str,
        *,
        live_session_id: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Close one viewer; 404 unless it exists (in that session, for that owner)."""
        viewer = self._viewers.get(resource_id)
        if (
            viewer is None
            or (live_session_id is not None and viewer.live_session_id != live_session_id)
            or (owner is not None and viewer.owner != owner)
        ):
            raise Problem(404, "unknown-viewer", "No such WebRTC viewer (already closed?).")
        await self._close(viewer)

    async def close_owned(self, owner: str) -> None:
        """Close every viewer `owner` opened (its socket disconnected)."""
        await self._close_all_of([v for v in self._viewers.values() if v.owner == owner])

    async def close_all(self) -> None:
        """Close every peer (at shutdown) and wait for pending closes."""
        await self._close_all_of(list(self._viewers.values()))
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _open(self, live_session_id: str, hub: StreamHub, owner: str | None) -> Viewer:
        peer = RTCPeerConnection(self._configuration)
        viewer = Viewer(secrets.token_urlsafe(18), live_session_id, owner, hub, peer)
        self._viewers[viewer.resource_id] = viewer
        self._per_session[live_session_id] += 1
        self._watch(hub)

        @peer.on("connectionstatechange")
        def on_connection_state() -> None:
            if peer.connectionState in ENDED_STATES:
                self._spawn(self._close(viewer))
            elif peer.connectionState == "connected" and viewer.connect_deadline is not None:
                viewer.connect_deadline.cancel()

        viewer.connect_deadline = asyncio.get_running_loop().call_later(
            self._connect_timeout, self._give_up_connecting, viewer
        )
        return viewer

    async def _negotiate(self, viewer: Viewer, offer: ViewerOffer) -> str:
        fanout = self._join_fanout(viewer) if self.fast_path else None
        clock = ViewerClock()
        for kind in ("video", "audio") if offer.audio else ("video",):
            transceiver = viewer.peer.addTransceiver(kind, direction="sendonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            if fanout is None:
                track = HubTrack(kind, viewer.hub)
                viewer.tracks.append(track)
                transceiver.sender.replaceTrack(track)
                continue
            sender = ViewerRtpSender(kind, clock, fanout)
            sender.install(transceiver.sender)
            viewer.senders.append(sender)
        if self.ice_port is not None:
            for connection in ice_connections(viewer.peer):
                gather_on(connection, self.ice_port)
        try:
            await viewer.peer.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        except Exception as error:  # aiortc validates with asserts and assorted errors
            raise malformed_sdp(str(error) or type(error).__name__) from None
        await viewer.peer.setLocalDescription(await viewer.peer.createAnswer())
        return without_remb(viewer.peer.localDescription.sdp)

    def _join_fanout(self, viewer: Viewer) -> StreamFanout:
        fanout = viewer.fanout = self._fanouts.get(viewer.hub) or StreamFanout(
            viewer.hub, pacing=self._pacing
        )
        self._fanouts[viewer.hub] = fanout
        fanout.join()
        return fanout

    def _watch(self, hub: StreamHub) -> None:
        """Close a stream's viewers as soon as it ends, even those not yet connected."""
        if hub not in self._watched_hubs:
            self._watched_hubs.add(hub)
            hub.add_close_callback(self._stream_ended)

    def _stream_ended(self, hub: StreamHub) -> None:
        for viewer in [v for v in self._viewers.values() if v.hub is hub]:
            self._spawn(self._close(viewer))

    def _give_up_connecting(self, viewer: Viewer) -> None:
        if viewer.peer.connectionState != "connected":
            log.info("viewer %s never connected; closing it", viewer.resource_id)
            self._spawn(self._close(viewer))

    async def _close_all_of(self, viewers: list[Viewer]) -> None:
        await asyncio.gather(*(self._close(viewer) for viewer in viewers))

    async def _close(self, viewer: Viewer) -> None:
        """Idempotent: forget the viewer at once (the count drops), then close its peer."""
        if self._viewers.pop(viewer.resource_id, None) is None:
            return
        self._per_session[viewer.live_session_id] -= 1
        if not self._per_session[viewer.live_session_id]:
            del self._per_session[viewer.live_session_id]
        if viewer.connect_deadline is not None:
            viewer.connect_deadline.cancel()
        for sender in viewer.senders:
            sender.stop()
        for track in viewer.tracks:
            track.stop()
        if viewer.fanout is not None and viewer.fanout.leave():
            del self._fanouts[viewer.hub]
        try:
            await viewer.peer.close()
        except Exception:
            log.exception("closing viewer %s failed", viewer.resource_id)
        if viewer.presence_key is not None and self.presence is not None:
            try:
                await self.presence.leave(viewer.live_session_id, viewer.presence_key)
            except Exception:  # a cache outage: the count is off until it expires
                log.exception("could not count viewer %s out", viewer.resource_id)

    def _spawn(self, closing: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(closing)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def peer_configuration(port: IcePort | None) -> RTCConfiguration:
    """The server's side of a peer: on the shared port, one bundled ICE agent."""
    return RTCConfiguration(
        iceServers=[],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE if port else RTCBundlePolicy.BALANCED,
    )


def stream_not_live(live_session_id: str) -> Problem:
    return Problem(
        404, "stream-not-live", f"Live session {live_session_id} is not streaming right now."
    )
