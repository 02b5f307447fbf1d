"""aiortc tracks that hand a stream hub's encoded frames to a viewer's RTP senders.

A track returns `av.Packet`s, never decoded frames: aiortc's sender then only packs
them (H.264: split on Annex-B start codes, FU-A/STAP-A; Opus: one packet per RTP
payload), so a viewer costs no decoding or encoding. Each track reads its own hub
subscription, so the hub's lag handling (skip to the next keyframe) applies to the
viewer directly and nothing is buffered before the peer starts sending.
"""

from __future__ import annotations

from fractions import Fraction

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from media.hub import StreamEnded, Subscription
from media.packets import OpusFrame, VideoFrame

VIDEO_CLOCK_RATE = 90_000
AUDIO_CLOCK_RATE = 48_000
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_TIME_BASE = Fraction(1, AUDIO_CLOCK_RATE)
VIDEO_TICKS_PER_MS = VIDEO_CLOCK_RATE // 1000
AUDIO_TICKS_PER_MS = AUDIO_CLOCK_RATE // 1000
MAX_AUDIO_JITTER = 40 * AUDIO_TICKS_PER_MS  # beyond this a timestamp is a real gap, not rounding


class ViewerClock:
    """A viewer's time zero: the stream time of the first frame it is sent.

    Shared by the viewer's audio and video tracks, so both RTP timelines start from
    the same instant and stay aligned, whenever in the stream the viewer joined.
    """

    def __init__(self) -> None:
        self._origin_ms: int | None = None

    def elapsed_ms(self, stream_ms: int) -> int:
        if self._origin_ms is None:
            self._origin_ms = stream_ms
        return stream_ms - self._origin_ms


class HubTrack(MediaStreamTrack):
    """Reads one kind of frame from a hub subscription, skipping the other kind."""

    frame_type: type[VideoFrame] | type[OpusFrame]

    def __init__(self, subscription: Subscription, clock: ViewerClock) -> None:
        super().__init__()
        self._subscription = subscription
        self._clock = clock

    async def recv(self) -> av.Packet:
        while self.readyState == "live":
            try:
                frame = await self._subscription.get()
            except StreamEnded:
                break
            if isinstance(frame, self.frame_type):
                return self._packet(frame)
        self.stop()
        raise MediaStreamError

    def stop(self) -> None:
        """Also ends the subscription, so the hub stops keeping packets for it."""
        super().stop()
        self._subscription.close()

    def _packet(self, frame: VideoFrame | OpusFrame) -> av.Packet:
        raise NotImplementedError


class HubVideoTrack(HubTrack):
    """H.264 access units (Annex-B, SPS/PPS before each IDR) on a 90 kHz clock."""

    kind = "video"
    frame_type = VideoFrame

    def _packet(self, frame: VideoFrame) -> av.Packet:
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = self._clock.elapsed_ms(frame.pts) * VIDEO_TICKS_PER_MS
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = frame.keyframe
        return packet


class HubOpusTrack(HubTrack):
    """Opus packets on a 48 kHz clock counted in samples.

    The hub's millisecond timestamps are rounded; counting samples keeps consecutive
    packets exactly `samples` apart, and a real gap (dropped audio) resynchronises.
    """

    kind = "audio"
    frame_type = OpusFrame

    def __init__(self, subscription: Subscription, clock: ViewerClock) -> None:
        super().__init__(subscription, clock)
        self._next_pts: int | None = None

    def _packet(self, frame: OpusFrame) -> av.Packet:
        pts = self._clock.elapsed_ms(frame.timestamp) * AUDIO_TICKS_PER_MS
        if self._next_pts is not None and abs(pts - self._next_pts) <= MAX_AUDIO_JITTER:
            pts = self._next_pts
        self._next_pts = pts + frame.samples
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts
        packet.time_base = AUDIO_TIME_BASE
        return packet
