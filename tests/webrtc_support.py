"""Test helpers for WebRTC: a real aiortc viewer that decodes what it receives, and
ICE kept on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

WAIT = 10.0


def free_webrtc_port() -> int:
    """A port number free for both UDP and TCP on every address (the shared WebRTC port
    listens on both, on 0.0.0.0)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("0.0.0.0", 0))  # noqa: S104 (as the server binds it)
            number = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("0.0.0.0", number))  # noqa: S104
                except OSError:
                    continue
                return number


def loopback_webrtc_settings() -> dict[str, object]:
    """Settings that keep a test app's WebRTC on one free port of 127.0.0.1."""
    return {
        "webrtc_udp_port": free_webrtc_port(),
        "webrtc_tcp_port": 0,
        "webrtc_public_hosts": "127.0.0.1",
        "webrtc_interface_candidates": False,
    }


def keep_ice_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers every address except loopback; tests must talk only to loopback."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def eventually(predicate: Callable[[], bool], seconds: float = WAIT) -> bool:
    """Poll `predicate` until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def settled(read: Callable[[], object], quiet: float = 0.5, seconds: float = WAIT) -> None:
    """Wait until `read()` has not changed for `quiet` seconds (at most `seconds`): the
    receiver holds a stream's last frame or two, so "all of them" may never come."""
    deadline = time.monotonic() + seconds
    last, since = read(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if (current := read()) != last:
            last, since = current, time.monotonic()


class OfferingPeer:
    """An aiortc peer that makes the offer, as WHIP publishers and WHEP viewers do."""

    def __init__(self) -> None:
        self.peer = RTCPeerConnection()

    async def offer(self) -> str:
        await self.peer.setLocalDescription(await self.peer.createOffer())
        return self.peer.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.peer.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def close(self) -> None:
        await self.peer.close()


class DecodingViewer(OfferingPeer):
    """An aiortc peer that receives (and decodes) H.264 video and Opus audio.

    Counts are of decoded frames: aiortc's receiver depacketizes and decodes, so a
    frame counted here is one a player could have shown or played.
    """

    def __init__(self, *, audio: bool = True) -> None:
        super().__init__()
        self.peer.addTransceiver("video", direction="recvonly")
        if audio:
            self.peer.addTransceiver("audio", direction="recvonly")
        self.video_frames = 0
        self.audio_frames = 0
        self.video_sizes: set[tuple[int, int]] = set()
        self.first_video_at: float | None = None
        self.ended: set[str] = set()
        self._readers: list[asyncio.Task[None]] = []
        self.peer.on("track", self._on_track)

    @property
    def connected(self) -> bool:
        return self.peer.connectionState == "connected"

    async def close(self) -> None:
        await super().close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            if track.kind == "video":
                self.video_frames += 1
                self.video_sizes.add((frame.width, frame.height))
                if self.first_video_at is None:
                    self.first_video_at = time.perf_counter()
            else:
                self.audio_frames += 1
        self.ended.add(track.kind)


async def watch_over_whep(api, live_id: str, viewer: OfferingPeer) -> None:
    """Join `viewer` to the session's stream through its WHEP endpoint."""
    response = await api.post(
        f"/api/live-sessions/{live_id}/whep",
        data=await viewer.offer(),
        headers={"Content-Type": "application/sdp"},
    )
    assert response.status == 201, await response.text()
    await viewer.accept(await response.text())
