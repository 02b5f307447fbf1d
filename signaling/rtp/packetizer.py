"""RTP payloads of a stream's frames, made once per stream and shared by every viewer.

H.264 access units are split with aiortc's own packetizer (FU-A / STAP-A), its
fragments made equal-size (signaling/adapters/aiortc_private.py); an Opus packet is one
payload. What differs per viewer (SSRC, sequence numbers, the timestamp origin) lives
in the 12-byte RTP header, so a viewer only puts its header before bytes made here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from media.packets import OpusFrame, Packet, VideoFrame
from signaling.adapters.aiortc_private import h264_payloads, pack_header_extensions

VIDEO_CLOCK_RATE = 90_000
AUDIO_CLOCK_RATE = 48_000
VIDEO_TICKS_PER_MS = VIDEO_CLOCK_RATE // 1000
AUDIO_TICKS_PER_MS = AUDIO_CLOCK_RATE // 1000
MAX_AUDIO_JITTER = 40 * AUDIO_TICKS_PER_MS  # beyond this a timestamp is a real gap, not rounding
EXTENSION_HEADER = struct.Struct("!HH")

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


class ExtensionLayout(NamedTuple):
    """The header extension one negotiation asked for: the mid's id and value.

    Viewers answered alike share one layout, hence one copy of each packet's bytes.
    abs-send-time is never written, even where negotiated (an extension may be left out
    of any packet): it only feeds the viewer's bandwidth estimate (REMB), which nothing
    here uses, since the stream is passed through at the bitrate it was published at.
    """

    mid_id: int | None
    mid: str | None

    def block(self) -> bytes:
        """The extension header and values that follow the fixed RTP header."""
        if not self.mid_id or self.mid is None:
            return b""
        profile, value = pack_header_extensions([(self.mid_id, self.mid.encode())])
        value += b"\x00" * (-len(value) % 4)
        return EXTENSION_HEADER.pack(profile, len(value) // 4) + value


@dataclass(eq=False)
class RtpFrame:
    """One frame's RTP payloads on the stream's timeline.

    `ticks` is in the codec's clock rate from the stream's zero; `stream_ms` is the hub
    timestamp (what viewer clocks align on); `ntp` the wall clock when the fan-out
    received it (for sender reports); `serial` its number in the fan-out (for NACKs).
    `bodies` caches, per extension layout, the extension block followed by each
    payload: the packet minus its header. A paced frame leaves in `chunks`: each is an
    RtpFrame of a run of its packets, and only the last `ends_frame` (carries the RTP
    marker bit) and names the `whole` frame.
    """

    kind: str
    stream_ms: int
    ticks: int
    keyframe: bool
    ticks_per_ms: int
    payloads: list[bytes]
    ntp: int = 0
    octets: int = 0
    serial: int = 0
    ends_frame: bool = True
    whole: RtpFrame | None = None
    _bodies: dict[ExtensionLayout, list[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.octets = sum(map(len, self.payloads))

    def chunks(self, packets: int) -> list[RtpFrame]:
        """The frame as runs of at most `packets` packets (itself if it is one run)."""
        if len(self.payloads) <= packets:
            return [self]
        runs = [self.payloads[at : at + packets] for at in range(0, len(self.payloads), packets)]
        last = len(runs) - 1
        return [
            RtpFrame(
                self.kind, self.stream_ms, self.ticks, self.keyframe, self.ticks_per_ms, run,
                ntp=self.ntp, ends_frame=index == last, whole=self if index == last else None,
            )
            for index, run in enumerate(runs)
        ]  # fmt: skip

    def bodies(self, layout: ExtensionLayout) -> list[bytes]:
        bodies = self._bodies.get(layout)
        if bodies is None:
            block = layout.block()
            bodies = self._bodies[layout] = [block + payload for payload in self.payloads]
        return bodies


class StreamPacketizer:
    """Turns a hub's WebRTC packets into `RtpFrame`s (codec configs yield nothing).

    Audio advances by its sample count, so the hub's millisecond rounding does not
    jitter it; a real gap (dropped audio) resynchronises on the millisecond clock.
    """

    def __init__(self) -> None:
        self._next_audio_ticks: int | None = None

    def packetize(self, packet: Packet) -> RtpFrame | None:
        if isinstance(packet, VideoFrame):
            payloads = h264_payloads(packet.data)
            ticks = packet.pts * VIDEO_TICKS_PER_MS
            return RtpFrame(
                "video", packet.pts, ticks, packet.keyframe, VIDEO_TICKS_PER_MS, payloads
            )
        if isinstance(packet, OpusFrame):
            ticks = self._audio_ticks(packet)
            return RtpFrame(
                "audio", packet.timestamp, ticks, True, AUDIO_TICKS_PER_MS, [packet.data]
            )
        return None

    def _audio_ticks(self, frame: OpusFrame) -> int:
        ticks = frame.timestamp * AUDIO_TICKS_PER_MS
        expected = self._next_audio_ticks
        if expected is not None and abs(ticks - expected) <= MAX_AUDIO_JITTER:
            ticks = expected
        self._next_audio_ticks = ticks + frame.samples
        return ticks
