"""A viewer's media through aiortc's own public sending path: the fallback.

Where start-up finds that aiortc or pylibsrtp lacks an internal the fast path uses
(signaling/adapters/checks.py), each viewer's senders get one of these tracks instead:
aiortc reads the stream's encoded packets from it and packetizes, protects and sends
them itself (`MediaStreamTrack.recv` may return encoded packets, which aiortc passes
through without re-encoding). Slower per viewer (a hub subscription and aiortc's
per-packet loop each), but it needs nothing of aiortc beyond its public API.
"""

from __future__ import annotations

from fractions import Fraction

import av
from aiortc import MediaStreamError, MediaStreamTrack

from media.hub import StreamEnded, StreamHub
from media.packets import OpusFrame, VideoFrame

MILLISECONDS = Fraction(1, 1000)  # the hub's timestamps


class HubTrack(MediaStreamTrack):
    """One kind ("video" or "audio") of a stream hub's WebRTC packets, from a keyframe."""

    def __init__(self, kind: str, hub: StreamHub) -> None:
        super().__init__()
        self.kind = kind
        self._subscription = hub.subscribe(webrtc=True)
        self._started = kind != "video"

    async def recv(self) -> av.Packet:
        """The next packet of this kind, as aiortc's encoders `pack` it."""
        while True:
            try:
                packet = await self._subscription.get()
            except StreamEnded:
                self.stop()
                raise MediaStreamError from None
            if self.kind == "video" and isinstance(packet, VideoFrame):
                self._started = self._started or packet.keyframe
                if self._started:
                    return self._packet(packet.data, packet.pts)
            elif self.kind == "audio" and isinstance(packet, OpusFrame):
                return self._packet(packet.data, packet.timestamp)

    @staticmethod
    def _packet(data: bytes, milliseconds: int) -> av.Packet:
        packet = av.Packet(data)
        packet.pts = milliseconds
        packet.time_base = MILLISECONDS
        return packet

    def stop(self) -> None:
        """Also ends the hub subscription (the stream may go on for others)."""
        self._subscription.close()
        super().stop()
